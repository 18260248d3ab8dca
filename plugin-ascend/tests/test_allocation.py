"""HAMi's allocation protocol with the Ascend policy, on an in-memory API server: the pod that
holds the node lock gets its NPUs one container at a time, and only the last container's
Allocate marks it ``bind-phase=success`` and releases the lock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hami_common.deviceplugin.allocator import Allocator
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.runtime import to_allocate_keys
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol.annotations import BIND_PHASE, BIND_TIME, NODE_LOCK, VGPU_NODE
from hami_common.telemetry import in_memory_tracing

from .test_policy import policy

KEY = "hami.io/Ascend910B3-devices-to-allocate"
RUNTIME = (
    '[{"UUID":"vdie-0","temp":"vir05_1c_16g","memory":16384},'
    '{"UUID":"vdie-1","temp":"vir05_1c_16g","memory":16384}]'
)


def _pod() -> dict[str, Any]:
    ann = {KEY: "vdie-0,Ascend910B3,16384,0:;vdie-1,Ascend910B3,16384,0:;",
           "huawei.com/Ascend910B3": RUNTIME, VGPU_NODE: "n1", BIND_PHASE: "allocating",
           BIND_TIME: "100"}  # fmt: skip
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "annotations": ann},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending"}}  # fmt: skip


def test_hami_bug_ascend_success_only_after_the_last_container(
    device_config: Path, tmp_path: Path
) -> None:
    # HAMi's Ascend plugin never fills DevicesToHandle, so its first successful Allocate marks
    # the pod success and releases the node lock while the second container still waits for
    # its NPU: another pod could then be bound and allocated in between.
    api = FakeApiServer()
    api.put("/api/v1/nodes", {"metadata": {"name": "n1", "annotations": {
        NODE_LOCK: "2026-08-21T06:20:39Z,ns,p"}}})  # fmt: skip
    api.put("/api/v1/namespaces/ns/pods", _pod())
    p, _ = policy(device_config, tmp_path)

    async def go() -> list[tuple[str, str, bool, str]]:
        async with api.client() as client:
            keys = to_allocate_keys(p.options.vendor_table())
            tracer = in_memory_tracing("t")[0].get_tracer("t")
            alloc = Allocator(client, "n1", p, to_allocate_keys=keys, tracer=tracer)
            seen = []
            for _ in range(2):
                answer = await alloc.allocate(pb.AllocateRequest(container_requests=[
                    pb.ContainerAllocateRequest(devices_ids=["vdie-0-0"])]))  # fmt: skip
                ann = api.get("/api/v1/namespaces/ns/pods/p")["metadata"]["annotations"]
                node = api.get("/api/v1/nodes/n1")["metadata"]["annotations"]
                envs = answer.container_responses[0].envs
                seen.append((ann[BIND_PHASE], ann[KEY], NODE_LOCK in node,
                             envs["ASCEND_VISIBLE_DEVICES"]))  # fmt: skip
            return seen

    assert asyncio.run(go()) == [
        ("allocating", ";vdie-1,Ascend910B3,16384,0:;", True, "10"),
        ("success", ";;", False, "11"),
    ]
