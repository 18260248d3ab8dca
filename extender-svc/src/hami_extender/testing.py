"""Builders and fakes shared by the tests, the e2e suites and the benchmark.

`extender_rig` builds an `Extender` on the shared in-memory API server
(`hami_common.k8s.testing.FakeApiServer`) with a few one-GPU nodes, for unit tests.
`FakePlugin` stands in for the device plugins of many nodes in the scheduling benchmark (the
suites run the real plugin): it performs exactly the plugin's annotation steps after
``Allocate`` (blank the to-allocate entries, set ``bind-phase``, release the node lock) for every
bound pod in ``allocating``. `register_annotation` is what the plugin writes at start from a
device spec.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hami_rustcore as core
from hami_common.k8s import (
    NODES,
    PODS,
    ApiError,
    KubeClient,
    WatchEvent,
    list_then_watch,
)
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol import nodelock
from hami_common.protocol.annotations import BIND_PHASE, PHASE_ALLOCATING, PHASE_SUCCESS
from hami_common.telemetry import in_memory_tracing, new_registry
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hami_extender.events import EventSink
from hami_extender.explain import Explanations
from hami_extender.extender import Extender
from hami_extender.metrics import ExtenderMetrics
from hami_extender.pending import PendingPods
from hami_extender.settings import ExtenderSettings
from hami_extender.sync import StateSync

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


def extender_config(
    url: str, *, cert_file: Path | None = None, key_file: Path | None = None,
    ca_file: Path | None = None, managed: Sequence[str] = MANAGED_RESOURCES,
) -> Json:  # fmt: skip
    """kube-scheduler's extender section, as HAMi's chart writes it (§2.7). For an ``https://``
    url, ``tlsConfig`` (k8s.io/kube-scheduler/config/v1 ExtenderTLSConfig) names kube-scheduler's
    client certificate and key, which the extender's ``--client-ca-file`` must have signed, and
    the CA that signed the extender's serving certificate (``caFile``). ``managed``: the
    resources kube-scheduler leaves to the extender (NVIDIA's by default; HAMi's chart adds
    ``cambricon.com/vmlu`` and, with Ascend enabled, each chip's three names)."""
    https = url.startswith("https://")
    config: Json = {
        "urlPrefix": url, "filterVerb": "filter", "bindVerb": "bind", "enableHTTPS": https,
        "nodeCacheCapable": True, "weight": 1, "httpTimeout": "30s",
        "managedResources": [{"name": n, "ignoredByScheduler": True} for n in managed],
    }  # fmt: skip
    files = {"certFile": cert_file, "keyFile": key_file, "caFile": ca_file}
    if any(files.values()):
        if not https:
            raise ValueError(f"a tlsConfig needs an https:// urlPrefix, not {url}")
        config["tlsConfig"] = {key: str(path) for key, path in files.items() if path is not None}
    return config


class FakePlugin:
    """The plugin's steps after Allocate, for pods of one namespace (all when None)."""

    def __init__(
        self, kube: KubeClient, namespace: str | None = None,
        fail: Callable[[Json], bool] | None = None,
    ) -> None:  # fmt: skip
        self.kube, self.namespace, self.fail = kube, namespace, fail
        self.done: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def allocate(self, pod: Json) -> None:
        """As the plugin: read the node (its lock says whose Allocate this is), mark the pod,
        and release the lock only when the pod holds it (none, with ``--node-lock memory``)."""
        meta, node = pod["metadata"], pod["spec"]["nodeName"]
        ann = meta.get("annotations") or {}
        entries = str(ann.get(TO_ALLOCATE, "")).count(";")
        read = await self.kube.get(NODES, node, metadata_only=True)
        phase = "failed" if self.fail is not None and self.fail(pod) else PHASE_SUCCESS
        patch = {"metadata": {"annotations": {TO_ALLOCATE: ";" * entries, BIND_PHASE: phase}}}
        await self.kube.patch(PODS, meta["name"], patch, namespace=meta["namespace"])
        value, _ = nodelock.current_lock(read)
        lock = nodelock.parse_lock(value) if value else None
        if lock is not None and lock.owned_by(meta["namespace"], meta["name"]):
            await nodelock.release(self.kube, node, meta["namespace"], meta["name"], known=read)

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
                    task = asyncio.create_task(self._allocate(pod, uid))  # each node's plugin
                    self.tasks.add(task)  # runs on its own: pods do not wait for each other
                    task.add_done_callback(self.tasks.discard)

    async def _allocate(self, pod: Json, uid: str) -> None:
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
            for pending in (task, *self.tasks):
                pending.cancel()
            for pending in (task, *self.tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending


@dataclass
class Rig:
    """An `Extender` on a `FakeApiServer`, with what tests read back: spans, metrics, events."""

    api: FakeApiServer
    ext: Extender
    spans: InMemorySpanExporter
    registry: CollectorRegistry
    events: EventSink
    pending: PendingPods


def extender_rig(
    api: FakeApiServer, nodes: int = 3, *, extra_nodes: Sequence[Json] = (), **settings: Any
) -> Rig:
    """An Extender on ``nodes`` nodes ``n0``.. of one 16 GB GPU each, and ``extra_nodes`` as
    given, state synced, leading; ``settings`` are `ExtenderSettings` fields, its vendor table
    too (must run inside an event loop)."""
    client = api.client()
    cluster = core.Cluster("binpack", "spread", vendors=ExtenderSettings(**settings).vendors())
    listed = [api.put("/api/v1/nodes", n) for n in extra_nodes]
    for n in range(nodes):
        dev = core.Device(f"gpu-{n}", 10, 16000, 100, "NVIDIA-T4")
        register = {REGISTER: core.encode_node_devices([dev])}
        obj = {"metadata": {"name": f"n{n}", "annotations": register}}
        listed.append(api.put("/api/v1/nodes", obj))
    sync = StateSync(client, cluster)
    sync.handle_node_event(WatchEvent("SYNC", {"items": listed}))
    sync.handle_pod_event(WatchEvent("SYNC", {"items": []}))
    registry = new_registry()
    provider, spans = in_memory_tracing("hami-extender")
    events = EventSink(client, "hami-scheduler", known=sync.pods.__contains__)
    pending = PendingPods(client, "hami-scheduler")
    pending.apply("SYNC", {"items": []})
    ext = Extender(
        ExtenderSettings(**settings), cluster=cluster, sync=sync, client=client, events=events,
        explanations=Explanations(10), metrics=ExtenderMetrics(registry, cluster),
        tracer=provider.get_tracer("t"), is_leader=lambda: True, pending=pending,
    )  # fmt: skip
    return Rig(api, ext, spans, registry, events, pending)
