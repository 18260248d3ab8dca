"""The extender wire format: golden answers (UPDATE_GOLDEN=1 rewrites them), case-insensitive
keys, and garbage that always becomes a clear error, never an exception."""

from __future__ import annotations

import os
from pathlib import Path

import hami_rustcore as core
import orjson
import pytest
from hami_extender.wire import (
    WireError,
    bind_result,
    filter_result,
    parse_bind_args,
    parse_filter_args,
)
from hypothesis import given, settings
from hypothesis import strategies as st

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "filter-placed": filter_result(["n2"]),  # as HAMi: the chosen node alone
    "filter-unschedulable": filter_result([], {"n1": "node unregistered"}),
    "filter-error": filter_result(error="ExtenderArgs: extender args missing pod"),
    "bind-ok": bind_result(),
    "bind-error": bind_result("node n1 is locked by pod ns/p"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_answers(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    got = orjson.dumps(orjson.loads(CASES[name]), option=orjson.OPT_INDENT_2) + b"\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_bytes(got)
    assert got == path.read_bytes(), f"{name} changed; review and rerun with UPDATE_GOLDEN=1"


def test_keys_match_case_insensitively_like_go() -> None:
    body = orjson.dumps({"pod": {"metadata": {"uid": "u", "name": "p", "namespace": "n"}},
                         "nodenames": ["a"]})  # fmt: skip
    args = parse_filter_args(body)
    assert (args.uid, args.key, list(args.node_names or [])) == ("u", "n/p", ["a"])
    bind = parse_bind_args(b'{"podname":"p","PODNAMESPACE":"n","PodUid":"u","node":"x"}')
    assert (bind.key, bind.uid, bind.node) == ("n/p", "u", "x")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"[]", "must be a JSON object"),
        (b"{", "not JSON"),
        (b'{"NodeNames":["a"]}', "missing pod"),
        (b'{"Pod":{"metadata":{"uid":"u","name":"p"}}}', "nodeCacheCapable"),
        (b'{"Pod":{"metadata":{"uid":"u","name":"p"}},"NodeNames":"a"}', "list of strings"),
    ],
)
def test_bad_filter_args_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        parse_filter_args(body)


def test_node_names_stay_in_the_core_and_filter_like_a_list() -> None:
    """A 5,000-name list never becomes Python strings: the core copies the names into one
    buffer as it reads the body (rejecting a non-string there), and filters on it in place."""
    with pytest.raises(WireError, match="list of strings"):
        parse_filter_args(b'{"Pod":{"metadata":{"uid":"u","name":"p"}},"NodeNames":["a",1]}')
    body = b'{"Pod":{"metadata":{"uid":"u","name":"p"}},"NodeNames":["n1","n\\u00e9","n3"]}'
    names = parse_filter_args(body).node_names
    assert names is not None
    assert (len(names), names[1], names[-1], list(names)) == (
        3,
        "n\u00e9",
        "n3",
        ["n1", "n\u00e9", "n3"],
    )
    assert orjson.loads(names.to_json()) == ["n1", "n\u00e9", "n3"]
    with pytest.raises(IndexError):
        names[3]
    cluster = core.Cluster()
    for name in ("n1", "n3"):
        cluster.set_node(name, [core.Device(f"GPU-{name}", 10, 8000, 100, "A100")])
    request = core.PodRequest(
        "u", "n", "p", [core.ContainerRequest([core.DeviceRequest("NVIDIA", 1, mem_mib=1000)])]
    )
    in_core = cluster.filter(request, names, reserve=False)
    as_list = cluster.filter(request, list(names), reserve=False)
    assert (in_core.node, in_core.failed) == (as_list.node, as_list.failed)
    assert in_core.failed == {"n\u00e9": core.NODE_UNREGISTERED}


def test_passthrough_answer_writes_the_names_as_given() -> None:
    names = core.NodeNames(["a", 'b"c'])
    assert orjson.loads(filter_result(names))["NodeNames"] == ["a", 'b"c']


def test_bind_args_name_the_missing_fields() -> None:
    with pytest.raises(WireError, match="missing PodUID, Node"):
        parse_bind_args(b'{"PodName":"p","PodNamespace":"n"}')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(orjson.dumps))
def test_garbage_is_an_error_never_a_crash(body: bytes) -> None:
    for parse in (parse_filter_args, parse_bind_args):
        try:
            parse(body)
        except WireError as exc:
            message = str(exc)
        else:
            continue
        assert message, "a refusal must say what was wrong"


@pytest.mark.parametrize("value", [b"1e400", b'"\\ud800"', b"-1e999"])
def test_json_the_core_reads_and_orjson_refuses_is_a_clear_error(value: bytes) -> None:
    """Once an unhandled exception: HTTP 500 to kube-scheduler."""
    pod = b'{"metadata":{"uid":"u","name":"p"},"x":' + value + b"}"
    with pytest.raises(WireError, match=r"^ExtenderArgs: Pod: not JSON that can be read \("):
        parse_filter_args(b'{"Pod":' + pod + b',"NodeNames":["a"]}')
    nodes = b'{"items":[{"metadata":{"name":"n"},"x":' + value + b"}]}"
    with pytest.raises(WireError, match=r"^ExtenderArgs: Nodes: not JSON that can be read \("):
        parse_filter_args(b'{"Pod":{"metadata":{"uid":"u","name":"p"}},"Nodes":' + nodes + b"}")
