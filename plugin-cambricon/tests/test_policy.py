"""Cambricon's Allocate through HAMi's allocation protocol, on an in-memory API server: one sMLU
instance per MLU of the entry, the device nodes, HAMi's ``CAMBRICON_DSMLU_*`` annotations in
either spelling, the Cambricon lock removed once the pod's MLUs are all allocated; and the
capacity the plugin advertises is what HAMi reads its inventory from."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import hami_rustcore
import pytest
from google.protobuf.json_format import MessageToDict
from hami_common.deviceplugin.allocator import AllocationFailed, Allocator
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.runtime import to_allocate_keys
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol.annotations import BIND_PHASE, BIND_TIME, VGPU_NODE
from hami_common.protocol.mlulock import MLU_LOCK
from hami_common.settings import CambriconConfig
from hami_common.telemetry import in_memory_tracing
from hami_plugin_cambricon.devices import FakeMluBackend
from hami_plugin_cambricon.policy import CambriconPolicy

GOLDEN = Path(__file__).parent / "golden"
KEY = "hami.io/cambricon-mlu-devices-to-allocate"
LOCK = "2026-08-21T06:20:39Z"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def backend(n: int = 2) -> FakeMluBackend:
    spec = [{"uuid": f"MLU-{i}", "index": i, "model": "MLU370-X8", "memory_mib": 24576}
            for i in range(n)]  # fmt: skip
    return FakeMluBackend({"devices": spec})


def rig(
    annotations: dict[str, str], containers: int = 1
) -> tuple[FakeApiServer, FakeMluBackend, Allocator]:
    api = FakeApiServer()
    api.put("/api/v1/nodes", {"metadata": {"name": "n1", "annotations": {MLU_LOCK: LOCK}}})
    ann = {VGPU_NODE: "n1", BIND_PHASE: "allocating", BIND_TIME: "100", **annotations}
    api.put("/api/v1/namespaces/ns/pods", {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "annotations": ann},
        "spec": {"nodeName": "n1", "containers": [{"name": f"c{i}"} for i in range(containers)]},
        "status": {"phase": "Pending"}})  # fmt: skip
    mlus = backend()
    policy = CambriconPolicy(
        CambriconConfig(), mlus, mlus.discover(), dev_root=Path("/nonexistent")
    )
    alloc = Allocator(api.client(), "n1", policy, to_allocate_keys=to_allocate_keys(),
                      tracer=in_memory_tracing("t")[0].get_tracer("t"))  # fmt: skip
    return api, mlus, alloc


def request() -> pb.AllocateRequest:
    return pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=["x"])])


def state(api: FakeApiServer) -> tuple[dict[str, str], bool]:
    pod = api.get("/api/v1/namespaces/ns/pods/p")["metadata"]["annotations"]
    return pod, MLU_LOCK in api.get("/api/v1/nodes/n1")["metadata"]["annotations"]


def test_an_mlu_becomes_an_smlu_of_hamis_share() -> None:
    api, mlus, alloc = rig({KEY: "n1-cambricon-mlu-1,MLU,5120,10:;",
                            "CAMBRICON_DSMLU_ASSIGNED": "false",
                            "CAMBRICON_DSMLU_PROFILE": "1_10_20"})  # fmt: skip
    answer = asyncio.run(alloc.allocate(request())).container_responses[0]
    text = json.dumps(MessageToDict(answer, preserving_proto_field_name=True), indent=1)
    check_golden("allocate-smlu.json", text + "\n")
    [made] = mlus.instances
    assert (made.slot, made.profile_id) == (1, 1)
    ann, locked = state(api)
    assert ann["CAMBRICON_DSMLU_ASSIGNED"] == "true"
    assert ann["CAMBRICON_DSMLU_PROFILE_INSTANCE"] == made.annotation
    assert "CAMBRICON_DSMLU_ASSIGHED" not in ann
    assert ann[BIND_PHASE] == "success"
    assert not locked


def test_hami_bug_cambricon_assighed_spelling_is_read() -> None:
    # HAMi v2.10 writes CAMBRICON_DSMLU_ASSIGNED, Cambricon's plugin reads ASSIGHED: neither
    # finds the pods of the other. This plugin allocates a pod placed by an older HAMi (the
    # ASSIGHED spelling) all the same, and marks it assigned in both spellings.
    api, _, alloc = rig({KEY: "n1-cambricon-mlu-0,MLU,5120,10:;",
                         "CAMBRICON_DSMLU_ASSIGHED": "false"})  # fmt: skip
    asyncio.run(alloc.allocate(request()))
    ann, _ = state(api)
    assert (ann["CAMBRICON_DSMLU_ASSIGHED"], ann["CAMBRICON_DSMLU_ASSIGNED"]) == ("true", "true")
    assert ann[BIND_PHASE] == "success"


def test_the_lock_is_kept_until_the_last_mlu_container() -> None:
    api, mlus, alloc = rig({KEY: "n1-cambricon-mlu-0,MLU,5120,10:;n1-cambricon-mlu-1,MLU,2560,5:;"},
                           containers=2)  # fmt: skip
    asyncio.run(alloc.allocate(request()))
    ann, locked = state(api)
    assert (ann[BIND_PHASE], locked) == ("allocating", True)
    asyncio.run(alloc.allocate(request()))
    ann, locked = state(api)
    assert (ann[BIND_PHASE], locked) == ("success", False)
    assert [(i.slot, i.profile_id) for i in mlus.instances] == [(0, 1), (1, 2)]
    assert ann["CAMBRICON_DSMLU_PROFILE_INSTANCE"] == mlus.instances[0].annotation


@pytest.mark.parametrize(
    ("devices", "message"),
    [("n1-cambricon-mlu-7,MLU,5120,10:;", "is not one of this node's 2 MLUs"),
     ("n1-cambricon-mlu-0,MLU,5120,0:;", "an sMLU needs a share of the cores")],
)  # fmt: skip
def test_failures_mark_the_pod_failed_and_release_the_lock(devices: str, message: str) -> None:
    api, _, alloc = rig({KEY: devices})
    with pytest.raises(AllocationFailed, match=message):
        asyncio.run(alloc.allocate(request()))
    ann, locked = state(api)
    assert (ann[BIND_PHASE], locked) == ("failed", False)


def test_the_advertised_capacity_gives_hamis_inventory() -> None:
    mlus = backend(3)
    policy = CambriconPolicy(CambriconConfig(), mlus, mlus.discover())
    devices = mlus.discover()
    core, memory = policy.capacity_resources()
    assert (core.resource_name, memory.resource_name) == (
        "cambricon.com/mlu.smlu.vcore", "cambricon.com/mlu.smlu.vmemory")  # fmt: skip
    vcore = sum(core.replicas(d) for d in devices)
    vmemory = sum(memory.replicas(d) for d in devices)
    assert (vcore, vmemory) == (300, 288)  # 24576 MiB / 256
    synthesized = hami_rustcore.cambricon_devices("n1", vcore, vmemory)
    assert [(d.id, d.devmem) for d in synthesized] == [
        (f"n1-cambricon-mlu-{i}", 24576) for i in range(3)
    ]
    assert policy.node_annotations(devices, {}) == {}
