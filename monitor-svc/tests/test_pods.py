"""The node's pods: which physical device each container's device index is."""

from __future__ import annotations

import asyncio

import pytest
from hami_common.k8s import PODS
from hami_common.k8s.testing import FakeApiServer
from hami_monitor.pods import PodIndex, pod_info
from hami_monitor.testing import ALLOCATED, gpu_pod


def test_devices_by_container_in_annotation_order() -> None:
    pod = gpu_pod("p", [[("GPU-a", 1000, 30)], [("GPU-b", 10, 0), ("GPU-c", 10, 0)]],
                  containers=["main", "side"])  # fmt: skip
    pod["spec"]["initContainers"] = [{"name": "init"}]
    pod["metadata"]["annotations"][ALLOCATED] = ";" + pod["metadata"]["annotations"][ALLOCATED]
    info = pod_info(pod, ALLOCATED)
    assert info is not None
    assert info.devices == {"main": ("GPU-a",), "side": ("GPU-b", "GPU-c")}
    assert (info.namespace, info.name, info.uid) == ("team", "p", "uid-p")


def test_an_allocation_that_does_not_decode_leaves_no_devices(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pod = gpu_pod("p", [[("GPU-a", 1, 1)]])
    pod["metadata"]["annotations"][ALLOCATED] = "GPU-a,NVIDIA,lots,1:;"
    info = pod_info(pod, ALLOCATED)
    assert info is not None
    assert info.devices == {}
    assert "does not decode" in caplog.text


def test_index_lists_then_watches_this_node_only() -> None:
    asyncio.run(_lists_then_watches())


async def _lists_then_watches() -> None:
    api = FakeApiServer()
    api.add(PODS, gpu_pod("here", [[("GPU-a", 1, 1)]]))
    api.add(PODS, gpu_pod("elsewhere", [[("GPU-z", 1, 1)]], node="node-2"))
    async with api.client() as client:
        index = PodIndex(client, "node-1", ALLOCATED)
        task = asyncio.create_task(index.run())
        try:
            await asyncio.wait_for(index.synced.wait(), 5)
            assert set(index.pods) == {"uid-here"}
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


def test_apply_events() -> None:
    index = PodIndex(None, "node-1", ALLOCATED)
    index.apply("SYNC", {"items": [gpu_pod("a", [[("GPU-a", 1, 1)]])]})
    index.apply("ADDED", gpu_pod("b", [[("GPU-b", 1, 1)]]))
    index.apply("DELETED", {"metadata": {"uid": "uid-a"}})
    assert set(index.pods) == {"uid-b"}
    assert index.synced.is_set()
