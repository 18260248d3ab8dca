"""kubectl's table style."""

from __future__ import annotations

from hami_kubectl.output import dump, table


def test_table_is_kubectls() -> None:
    text = table(["name", "memory(used)"], [["a-long-name", None], ["b", "10Mi"]])
    assert text.splitlines() == [
        "NAME          MEMORY(USED)",
        "a-long-name   <none>",
        "b             10Mi",
    ]


def test_json_and_yaml() -> None:
    assert dump({"a": [1]}, "json") == '{\n    "a": [\n        1\n    ]\n}'
    assert dump({"a": [1]}, "yaml") == "a:\n- 1"
