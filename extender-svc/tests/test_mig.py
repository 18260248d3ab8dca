"""Dynamic MIG through the extender's state: the MIG instances that pods hold (their
``hami.io/vgpu-mig-allocations``) are counted from a list and from single events, a reservation
that does not decode is an error naming it, and the filter's answer carries the annotation."""

from __future__ import annotations

import json
from typing import Any

import hami_rustcore as core
import pytest
from hami_common.k8s import WatchEvent
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol.annotations import MIG_ALLOCATIONS
from hami_extender.sync import StateSync
from hami_extender.testing import ALLOCATED, REGISTER

Json = dict[str, Any]
A100 = "NVIDIA A100-SXM4-40GB"


def mig_node(name: str) -> Json:
    profiles = core.mig_registration(A100)
    text = (f'[{{"id":"{name}-g0","index":0,"count":7,"devmem":40192,"devcore":100,'
            f'"type":"{A100}","numa":0,"mode":"mig","health":true,'
            f'"migProfiles":{profiles}}}]')  # fmt: skip
    return {"metadata": {"name": name, "annotations": {REGISTER: text}}}


def mig_pod(uid: str, profile: str, start: int, size: int, *, bound: bool = True) -> Json:
    gpu = "m-g0"
    mig = [{"containerIndex": 0, "deviceIndex": 0, "gpuUUID": gpu, "profile": profile,
            "placement": {"start": start, "size": size}}]  # fmt: skip
    ann = {"hami.io/vgpu-node": "m", ALLOCATED: f"{gpu},NVIDIA,4864,15:;",
           MIG_ALLOCATIONS: json.dumps(mig)}  # fmt: skip
    spec: Json = {"containers": [{"name": "c"}]}
    if bound:
        spec["nodeName"] = "m"
    return {"metadata": {"uid": uid, "namespace": "ns", "name": f"p-{uid}", "annotations": ann,
                         "labels": {"hami.io/vgpu-node": "m"}},
            "spec": spec, "status": {"phase": "Running"}}  # fmt: skip


def ask(cluster: core.Cluster, mem: int) -> core.FilterResult:
    container = core.ContainerRequest([core.DeviceRequest("NVIDIA", 1, mem_mib=mem)])
    request = core.PodRequest("probe", "ns", "probe", [container], {"nvidia.com/vgpu-mode": "mig"})
    return cluster.filter(request, ["m"], reserve=False)


@pytest.fixture
def sync(api: FakeApiServer) -> StateSync:
    return StateSync(api.client(), core.Cluster(), page_size=2)


def test_held_instances_are_counted_from_the_list_and_events(sync: StateSync) -> None:
    sync.handle_node_event(WatchEvent("SYNC", {"items": [mig_node("m")]}))
    # The bulk path (bound) and the per-pod path (an unbound reservation).
    items = [mig_pod("a", "3g.20gb", 4, 4), mig_pod("b", "1g.5gb", 3, 1, bound=False)]
    sync.handle_pod_event(WatchEvent("SYNC", {"items": items}))
    placed = json.loads(ask(sync.cluster, 4000).annotations[MIG_ALLOCATIONS])
    assert [(a["profile"], a["placement"]) for a in placed] == [("1g.5gb", {"start": 2, "size": 1})]
    # 3g.20gb: 4..8 is held and 0..4 overlaps slice 3.
    assert ask(sync.cluster, 15000).node is None
    sync.handle_pod_event(WatchEvent("DELETED", mig_pod("b", "1g.5gb", 3, 1)))
    placed = json.loads(ask(sync.cluster, 15000).annotations[MIG_ALLOCATIONS])
    assert placed[0]["placement"] == {"start": 0, "size": 4}


def test_a_reservation_that_does_not_decode_is_an_error_naming_it(
    sync: StateSync, caplog: pytest.LogCaptureFixture
) -> None:
    sync.handle_node_event(WatchEvent("SYNC", {"items": [mig_node("m")]}))
    bad = mig_pod("x", "1g.5gb", 7, 2)  # past the GPU's 8 memory slices
    sync.handle_pod_event(WatchEvent("ADDED", bad))
    assert sync.decode_errors == 1
    assert sync.cluster.pod_count() == 0
    assert "vgpu-mig-allocations" in caplog.text
    assert "8 memory slices" in caplog.text
    with pytest.raises(core.CoreError, match=r"entry \[0\].*migUUID"):
        core.normalize_mig_allocations('[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"G",'
                                       '"profile":"1g.5gb","placement":{"start":0,"size":1},'
                                       '"migUUID":"MIG-1"}]')  # fmt: skip
