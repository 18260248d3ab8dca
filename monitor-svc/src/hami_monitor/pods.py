"""The pods on this node (list-then-watch, ``spec.nodeName=<node>``): for each pod UID, its
namespace, name, and per container the physical devices behind the container's device indices
(from the vendor's allocated annotation, one entry per container, init containers first).
HAMi's monitor watches every pod of the cluster on every node; one node's pods are enough."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import hami_rustcore as core
from hami_common.deviceplugin.vendor import containers_in_annotation_order
from hami_common.k8s import LOOP_BACKOFF, PODS, Backoff, KubeClient, follow
from hami_common.protocol.annotations import MIG_ALLOCATIONS

log = logging.getLogger(__name__)
Json = dict[str, Any]


@dataclass(frozen=True)
class PodInfo:
    uid: str
    namespace: str
    name: str
    devices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Container name -> the UUIDs of its devices, by device index inside the container."""
    mig: tuple[MigInstance, ...] = ()
    """The MIG instances made for it (reservations with their runtime identity)."""


@dataclass(frozen=True)
class MigInstance:
    container: str
    device_index: int
    gpu_uuid: str
    mig_uuid: str
    profile: str
    gpu_instance_id: int
    compute_instance_id: int


def _mig_instances(pod: Json, text: str) -> tuple[MigInstance, ...]:
    meta = pod.get("metadata") or {}
    try:
        entries = json.loads(core.normalize_mig_allocations(text))
    except core.CoreError as exc:
        log.warning("pod %s/%s: %s does not decode: %s", meta.get("namespace"),
                    meta.get("name"), MIG_ALLOCATIONS, exc)  # fmt: skip
        return ()
    names = [str(c.get("name", "")) for c in containers_in_annotation_order(pod)]
    return tuple(
        MigInstance(
            names[e["containerIndex"]],
            e["deviceIndex"],
            e["gpuUUID"],
            e["migUUID"],
            e["profile"],
            e["gpuInstanceID"],
            e["computeInstanceID"],
        )
        for e in entries
        if "migUUID" in e and e["containerIndex"] < len(names)
    )


def pod_info(pod: Json, annotation: str) -> PodInfo | None:
    """The pod's `PodInfo`, or None without a UID. An allocation that does not decode leaves
    the pod without devices (its containers are then exported without a device UUID)."""
    meta = pod.get("metadata") or {}
    uid = str(meta.get("uid") or "")
    if not uid:
        return None
    devices: dict[str, tuple[str, ...]] = {}
    value = (meta.get("annotations") or {}).get(annotation)
    if value:
        try:
            entries = core.decode_pod_devices(value)
        except core.DecodeError as exc:
            log.warning("pod %s/%s: %s does not decode: %s", meta.get("namespace"),
                        meta.get("name"), annotation, exc)  # fmt: skip
            entries = []
        for container, entry in zip(containers_in_annotation_order(pod), entries, strict=False):
            if entry:
                devices[str(container.get("name", ""))] = tuple(d.uuid for d in entry)
    mig = (meta.get("annotations") or {}).get(MIG_ALLOCATIONS)
    return PodInfo(uid, str(meta.get("namespace", "")), str(meta.get("name", "")), devices,
                   _mig_instances(pod, str(mig)) if mig else ())  # fmt: skip


class PodIndex:
    def __init__(
        self, client: KubeClient | None, node: str, annotation: str,
        backoff: Backoff = LOOP_BACKOFF,
    ) -> None:  # fmt: skip
        """``client`` may be set later (the app's lifespan makes it), before `run`."""
        self.client, self.node, self.annotation, self.backoff = client, node, annotation, backoff
        self.pods: dict[str, PodInfo] = {}
        self.synced = asyncio.Event()

    def apply(self, kind: str, obj: Json) -> None:
        if kind == "SYNC":
            fresh = (pod_info(p, self.annotation) for p in obj.get("items") or [])
            self.pods = {p.uid: p for p in fresh if p is not None}
            self.synced.set()
        elif kind in ("ADDED", "MODIFIED"):
            info = pod_info(obj, self.annotation)
            if info is not None:
                self.pods = {
                    **self.pods,
                    info.uid: info,
                }  # readers in other threads see a whole dict
        elif kind == "DELETED":
            uid = str((obj.get("metadata") or {}).get("uid") or "")
            if uid in self.pods:
                self.pods = {k: v for k, v in self.pods.items() if k != uid}

    async def run(self) -> None:
        """Forever: list then watch; a failure waits (growing to a cap) and lists again."""
        if self.client is None:
            raise RuntimeError("PodIndex.run needs a client")
        await follow(self.client, PODS, self.apply, what="pod watch", log=log,
                     backoff=self.backoff, field_selector=f"spec.nodeName={self.node}")  # fmt: skip
