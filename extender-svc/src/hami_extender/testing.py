"""Builders and fakes shared by the tests, the e2e suites and the benchmark.

`FakePlugin` stands in for the NVIDIA device plugin until it lands: it performs exactly the
plugin's annotation steps after ``Allocate`` (blank the to-allocate entries, set ``bind-phase``,
release the node lock) for every bound pod in ``allocating``. `register_annotation` is what the
plugin writes at start from a device spec.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import hami_rustcore as core
from hami_common.k8s import PODS, ApiError, KubeClient, list_then_watch
from hami_common.protocol import nodelock
from hami_common.protocol.annotations import BIND_PHASE, PHASE_ALLOCATING, PHASE_SUCCESS

Json = dict[str, Any]
REGISTER = "hami.io/node-nvidia-register"
TO_ALLOCATE = "hami.io/vgpu-devices-to-allocate"
ALLOCATED = "hami.io/vgpu-devices-allocated"
MANAGED_RESOURCES = ("nvidia.com/gpu", "nvidia.com/gpumem", "nvidia.com/gpucores",
                     "nvidia.com/gpumem-percentage", "nvidia.com/priority")  # fmt: skip


def register_annotation(devices: Sequence[Mapping[str, Any]], split: int = 10) -> str:
    """The ``hami.io/node-nvidia-register`` value for devices given as the e2e spec's dicts
    (uuid, index, model, memory_mib, cores, numa, healthy)."""
    return core.encode_node_devices([
        core.Device(d["uuid"], split, d["memory_mib"], d["cores"], d["model"],
                    index=d["index"], numa=d["numa"], health=d.get("healthy", True))
        for d in devices
    ])  # fmt: skip


def gpu_pod(name: str, limits: Mapping[str, str], annotations: Mapping[str, str] | None = None,
            scheduler: str | None = None) -> Json:  # fmt: skip
    spec: Json = {
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "cuda", "image": "nvidia/cuda:12.4.0-base-ubuntu22.04",
                        "resources": {"limits": dict(limits)}}],
    }  # fmt: skip
    if scheduler:
        spec["schedulerName"] = scheduler
    return {"metadata": {"name": name, "annotations": dict(annotations or {})}, "spec": spec}


def extender_config(url: str) -> Json:
    """kube-scheduler's extender section, as HAMi's chart writes it (§2.7)."""
    return {
        "urlPrefix": url, "filterVerb": "filter", "bindVerb": "bind", "enableHTTPS": False,
        "nodeCacheCapable": True, "weight": 1, "httpTimeout": "30s",
        "managedResources": [{"name": n, "ignoredByScheduler": True} for n in MANAGED_RESOURCES],
    }  # fmt: skip


class FakePlugin:
    """The plugin's steps after Allocate, for pods of one namespace (all when None)."""

    def __init__(
        self, kube: KubeClient, namespace: str | None = None,
        fail: Callable[[Json], bool] | None = None,
    ) -> None:  # fmt: skip
        self.kube, self.namespace, self.fail = kube, namespace, fail
        self.done: set[str] = set()

    async def allocate(self, pod: Json) -> None:
        meta = pod["metadata"]
        ann = meta.get("annotations") or {}
        entries = str(ann.get(TO_ALLOCATE, "")).count(";")
        phase = "failed" if self.fail is not None and self.fail(pod) else PHASE_SUCCESS
        patch = {"metadata": {"annotations": {TO_ALLOCATE: ";" * entries, BIND_PHASE: phase}}}
        await self.kube.patch(PODS, meta["name"], patch, namespace=meta["namespace"])
        await nodelock.release(self.kube, pod["spec"]["nodeName"], meta["namespace"], meta["name"])

    async def run(self) -> None:
        async for event in list_then_watch(self.kube, PODS, namespace=self.namespace):
            pods = event.object.get("items", []) if event.type == "SYNC" else [event.object]
            for pod in pods:
                uid = pod["metadata"]["uid"]
                ann = pod["metadata"].get("annotations") or {}
                if (event.type != "DELETED" and uid not in self.done
                        and (pod.get("spec") or {}).get("nodeName")
                        and ann.get(BIND_PHASE) == PHASE_ALLOCATING):  # fmt: skip
                    self.done.add(uid)
                    try:
                        await self.allocate(pod)
                    except ApiError:
                        self.done.discard(uid)

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        task = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
