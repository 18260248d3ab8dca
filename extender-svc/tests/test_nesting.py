"""Nesting depth, fuzzed: /filter once answered HTTP 500 with a traceback for a pod nested about
1,000 levels deep (the core read it, then orjson refused it). Whatever the depth and wherever
it is (the pod's spec, a node of the simulation path, a field nobody reads, the bind body),
/filter and /bind answer with an error in the result, or their normal answer, never an
internal error; past `MAX_DEPTH` the error says so."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from hami_common.k8s.testing import FakeApiServer
from hami_extender.testing import extender_rig
from hami_extender.wire import MAX_DEPTH, WireError, check_depth
from hypothesis import given, settings
from hypothesis import strategies as st

Json = dict[str, Any]
DEEP = "JSON nested deeper than 100 levels"


def nested(depth: int, kind: str) -> str:
    """JSON text exactly ``depth`` levels deep: arrays, objects or both in turn, each level
    with a string of brackets beside it (which does not nest)."""
    opens, closes = [], []
    for level in range(depth):
        if kind == "arrays" or (kind == "mixed" and level % 2):
            opens.append('["[{\\"",')
            closes.append("]")
        else:
            opens.append('{"k":"]}","a":')
            closes.append("}")
    return "".join(opens) + "1" + "".join(reversed(closes))


def pod(extra: str) -> str:
    return ('{"metadata":{"uid":"u","name":"p","namespace":"ns"},"spec":{"schedulerName":'
            '"hami-scheduler","containers":[{"name":"c","resources":{"limits":{'
            '"nvidia.com/gpu":"1"}}}],"x":' + extra + "}}")  # fmt: skip


def bodies(depth: int, kind: str) -> dict[str, bytes]:
    deep = nested(depth, kind)
    node = '{"metadata":{"name":"n0"},"x":' + deep + "}"
    return {
        "pod": f'{{"Pod":{pod(deep)},"NodeNames":["n0"]}}'.encode(),
        "nodes": f'{{"Pod":{pod("1")},"Nodes":{{"items":[{node}]}}}}'.encode(),
        "unread": f'{{"Pod":{pod("1")},"NodeNames":["n0"],"Junk":{deep}}}'.encode(),
        "bind": f'{{"PodName":"p","PodNamespace":"ns","PodUID":"u","x":{deep}}}'.encode(),
    }


async def answers(depth: int, kind: str) -> dict[str, Json]:
    r = extender_rig(FakeApiServer(), nodes=1)
    out = {}
    for where, body in bodies(depth, kind).items():
        verb = r.ext.bind if where == "bind" else r.ext.filter
        out[where] = orjson.loads(await verb(body))
    return out


@settings(max_examples=40, deadline=None)
@given(depth=st.integers(0, 3000) | st.integers(MAX_DEPTH - 5, MAX_DEPTH + 5),
       kind=st.sampled_from(["arrays", "objects", "mixed"]))  # fmt: skip
def test_any_depth_anywhere_is_an_answer_never_an_internal_error(depth: int, kind: str) -> None:
    got = asyncio.run(answers(depth, kind))
    for where, answer in got.items():
        assert "hami-extender failed" not in answer["Error"], (where, answer)
    # the levels around the deep part: the pod and its spec; the NodeList, its items and the
    # node; the bind body
    assert (DEEP in got["pod"]["Error"]) == (depth + 2 > MAX_DEPTH), got["pod"]
    assert (DEEP in got["nodes"]["Error"]) == (depth + 3 > MAX_DEPTH), got["nodes"]
    assert (DEEP in got["bind"]["Error"]) == (depth + 1 > MAX_DEPTH), got["bind"]
    assert got["unread"]["Error"] == ""  # the core skips it: Python never reads it
    if depth + 2 <= MAX_DEPTH:
        assert got["pod"]["NodeNames"] == ["n0"]


@settings(max_examples=200, deadline=None)
@given(depth=st.integers(0, 400), kind=st.sampled_from(["arrays", "objects", "mixed"]),
       padding=st.integers(0, 300))  # fmt: skip
def test_check_depth_measures_exactly(depth: int, kind: str, padding: int) -> None:
    """Wide but shallow texts (many brackets, few levels) pass; the limit is exact."""
    text = ("[" + ",".join([*["[]"] * padding, nested(depth, kind)]) + "]").encode()
    real = 1 + max(depth, 1 if padding else 0)
    if real <= MAX_DEPTH:
        check_depth(text, "t")
    else:
        with pytest.raises(WireError) as caught:
            check_depth(text, "t")
        assert str(caught.value) == f"t: {DEEP}; no Kubernetes object is, so this is not one"
