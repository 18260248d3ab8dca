"""JSON patch generation: minimal, escaped, and always reproducing the mutated document."""

from __future__ import annotations

from typing import Any

from hami_webhook.patch import apply_patch, json_patch
from hypothesis import given
from hypothesis import strategies as st

documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
    max_leaves=25,
)


def test_operations_are_minimal_and_keys_escaped() -> None:
    before = {"spec": {"limits": {"nvidia.com/gpu": "1"}, "env": [{"name": "A"}], "x~y": 1}}
    after = {"spec": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"},
                      "env": [{"name": "A"}, {"name": "B"}], "x~y": 2}}  # fmt: skip
    assert json_patch(before, after) == [
        {"op": "add", "path": "/spec/limits/nvidia.com~1gpucores", "value": "100"},
        {"op": "add", "path": "/spec/env/1", "value": {"name": "B"}},
        {"op": "replace", "path": "/spec/x~0y", "value": 2},
    ]


def test_shrunk_lists_are_replaced_and_removed_keys_removed() -> None:
    assert json_patch({"a": [1, 2], "b": 1}, {"a": [1]}) == [
        {"op": "remove", "path": "/b"},
        {"op": "replace", "path": "/a", "value": [1]},
    ]


def test_bool_and_int_are_different_values() -> None:
    assert json_patch({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]


@given(documents, documents)
def test_patch_turns_before_into_after(before: Any, after: Any) -> None:
    assert apply_patch(before, json_patch(before, after)) == after


@given(documents)
def test_no_change_no_patch(doc: Any) -> None:
    assert json_patch(doc, doc) == []
