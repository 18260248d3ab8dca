"""Node and pod objects into the core's terms, and fuzzing of every annotation parser the
extender reads: the register annotation, the pod device annotations, the trace context and the
node lock value. Garbage is a clear `ObjectError` (or "no value"), never a crash."""

from __future__ import annotations

from typing import Any

import hami_rustcore as core
import orjson
import pytest
from hami_common.protocol import nodelock
from hami_common.protocol.annotations import DEVICE_CORDON, NODE_HANDSHAKE
from hami_common.telemetry import context_from_pod
from hami_extender.inventory import ObjectError, node_inventory, pod_placement
from hami_extender.testing import ALLOCATED, REGISTER
from hypothesis import given, settings
from hypothesis import strategies as st

Json = dict[str, Any]
SPECS = core.Cluster().vendor_specs()
KEYS = [str(s["allocated_annotation"]) for s in SPECS.values()]


def node(annotations: dict[str, Any], name: str = "n") -> Json:
    return {"metadata": {"name": name, "annotations": annotations}}


def devices(*healthy: bool) -> str:
    return core.encode_node_devices([
        core.Device(f"g{i}", 10, 16000, 100, "NVIDIA-T4", index=i, health=h)
        for i, h in enumerate(healthy)
    ])  # fmt: skip


def placed(text: str, *, bound: bool = True, init: int = 0) -> Json:
    spec: Json = {"containers": [{"name": "c"}], **({"nodeName": "n"} if bound else {})}
    if init:
        spec["initContainers"] = [{"name": "i"}] * init
    return {"metadata": {"uid": "u", "namespace": "ns", "name": "p",
                         "annotations": {"hami.io/vgpu-node": "n", ALLOCATED: text}},
            "spec": spec}  # fmt: skip


def test_only_healthy_devices_are_registered() -> None:
    inv = node_inventory(node({REGISTER: devices(True, False, True)}), SPECS)
    assert [d.id for d in inv.devices] == ["g0", "g2"]


def test_a_plugin_that_said_goodbye_registers_nothing() -> None:
    ann = {REGISTER: devices(True), NODE_HANDSHAKE: "Deleted_2026-01-01T00:00:00Z"}
    assert node_inventory(node(ann), SPECS).devices == []


def test_cordoned_devices_and_bad_pair_scores() -> None:
    ann = {
        REGISTER: devices(True, True),
        DEVICE_CORDON: " g1 ,,",
        "hami.io/node-nvidia-score": "%%",
    }
    inv = node_inventory(node(ann), SPECS)
    assert inv.cordoned == ["g1"]
    assert inv.pair_scores == []  # scores only refine placement: garbage is ignored


def test_a_bad_register_annotation_names_the_node_and_the_key() -> None:
    with pytest.raises(ObjectError, match=f"node n: annotation {REGISTER}"):
        node_inventory(node({REGISTER: "g0,ten,16000,100,T4,0,true:"}), SPECS)


def test_placements_and_which_pods_the_list_load_decodes_in_the_core() -> None:
    text = "g0,NVIDIA,1000,10:;"
    got = pod_placement(placed(text), SPECS)
    assert got is not None
    assert (got.node, got.bound, [[d.uuid for d in c] for c in got.devices]) == (
        "n",
        True,
        [["g0"]],
    )
    # the list load decodes the common placed pod in the core; the rest take the per-pod path
    reserved, init = placed(text, bound=False), placed(text, init=1)
    reserved["metadata"]["uid"], init["metadata"]["uid"] = "r", "i"
    page = orjson.dumps({"items": [placed(text), reserved, init]})
    got = core.load_pod_page(core.Cluster(), page)
    assert got.loaded == [("u", "ns/p")]
    assert [orjson.loads(o)["metadata"]["uid"] for o in got.others] == ["r", "i"]
    with pytest.raises(ObjectError, match="pod ns/p: annotation"):
        pod_placement(placed("g0,NVIDIA,lots,10:;"), SPECS)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
# text that looks like the annotations: their separators and fields, shuffled
annotation_text = st.text(alphabet="g0123456789,:;-NVIDIA-T4truefalse hami", max_size=80) | st.text(
    max_size=40
)


@settings(max_examples=300, deadline=None)
@given(text=annotation_text | json_values)
def test_fuzzed_register_annotations_are_devices_or_object_errors(text: Any) -> None:
    try:
        inv = node_inventory(node({REGISTER: text, "hami.io/node-nvidia-score": text}), SPECS)
    except ObjectError as exc:
        message, healthy = str(exc), True
    else:
        message, healthy = "node n", all(d.health for d in inv.devices)
    assert "node n" in message
    assert healthy


@settings(max_examples=300, deadline=None)
@given(text=annotation_text | json_values, meta=json_values, spec=json_values)
def test_fuzzed_pods_are_placements_or_object_errors(text: Any, meta: Any, spec: Any) -> None:
    for pod in (
        placed(text),
        {"metadata": meta, "spec": spec},
        {"metadata": {"annotations": meta}},
    ):
        try:
            pod_placement(pod, SPECS)
        except ObjectError as exc:
            message = str(exc)
        else:
            message = "pod "
        assert message.startswith("pod ")
        try:
            page = orjson.dumps({"items": [pod]})
        except TypeError:  # beyond what JSON from the API can hold (64-bit integers)
            continue
        core.load_pod_page(core.Cluster(), page)  # one pod's bad fields never fail its page


@settings(max_examples=300, deadline=None)
@given(
    value=st.text(alphabet="0123456789abcdef-", max_size=60) | st.text(max_size=60) | json_values
)
def test_fuzzed_trace_contexts_are_a_parent_or_none(value: Any) -> None:
    context_from_pod({"metadata": {"annotations": {"hami.io/trace-context": value}}})


@settings(max_examples=300, deadline=None)
@given(value=st.text(alphabet="0123456789-:TZ,ns+. ", max_size=60) | st.text(max_size=60))
def test_fuzzed_node_lock_values_are_a_lock_or_stale(value: str) -> None:
    lock = nodelock.parse_lock(value)
    if lock is not None:
        assert lock.taken.tzinfo is not None
        assert (lock.namespace == "") == (lock.name == "")
