"""Dynamic MIG through the whole path: a node whose plugin runs in ``operatingmode: mig`` with a
MIG-mode A100 (fake backend) registers its profiles; kube-scheduler with the extender reserves a
profile and placement (``hami.io/vgpu-mig-allocations``); the plugin makes the instance at
Allocate, answers with its MIG UUID and writes the runtime identity back; when the pod is gone
the plugin destroys the instance."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hami_common.k8s import PODS
from hami_common.protocol.annotations import BIND_PHASE, MIG_ALLOCATIONS
from hami_e2e.kubelet.node import GpuNode
from hami_e2e.nodes import NodePool
from hami_e2e.waiting import eventually
from hami_extender.testing import gpu_pod

pytestmark = pytest.mark.e2e
Json = dict[str, Any]
A100 = "NVIDIA A100-SXM4-40GB"


def test_mig_instance_made_at_allocate_and_reclaimed(  # type: ignore[no-untyped-def]
    hami_stack, hami_ns, gpu_nodes, tmp_path: Path
) -> None:
    [node] = gpu_nodes(NodePool(name="mig", count=1, devices_per_node=1), agents=False)
    config = tmp_path / "node-config.json"
    config.write_text(json.dumps({"nodeconfig": [{"name": node, "operatingmode": "mig"}]}))

    def mig_mode(spec: Json) -> None:
        for dev in spec["devices"]:
            dev.update(model=A100, memory_mib=40960, mode="mig")

    async def main() -> None:
        async with GpuNode(hami_stack.cluster, node, edit_spec=mig_mode,
                           extra_args=("--node-config-file", str(config))) as gpu, \
                hami_stack.client() as kube:  # fmt: skip
            [registered] = await gpu.wait_registered()
            assert registered.mode == "mig"
            limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "9000"}
            pod = gpu_pod("m", limits, {"nvidia.com/vgpu-mode": "mig"})
            await kube.create(PODS, pod, namespace=hami_ns)
            result = await gpu.kubelet.wait_allocation(hami_ns, "m", "cuda", within=90)
            assert result.error is None, result.error
            assert result.response is not None
            visible = dict(result.response.envs)["NVIDIA_VISIBLE_DEVICES"]
            assert visible.startswith("MIG-")

            async def done() -> Json | None:
                p = await kube.get(PODS, "m", namespace=hami_ns)
                ok = p["metadata"]["annotations"].get(BIND_PHASE) == "success"
                return p if ok else None

            placed = await eventually(done)
            [entry] = json.loads(placed["metadata"]["annotations"][MIG_ALLOCATIONS])
            assert (entry["profile"], entry["migUUID"]) == ("1g.10gb", visible)
            assert entry["placement"] == {"start": 6, "size": 2}  # 1g: from the highest start
            await kube.delete(PODS, "m", namespace=hami_ns)
            assert gpu.plugin is not None
            log = gpu.plugin.log

            async def reclaimed() -> bool | None:
                return "reclaimed 1g.10gb at 6+2" in log.read_text(errors="replace") or None

            await eventually(reclaimed, within=60)

    asyncio.run(main())
