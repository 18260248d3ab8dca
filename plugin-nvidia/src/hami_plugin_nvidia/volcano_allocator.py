"""volcano's allocation protocol, the device plugin's side (`hami_common.protocol.volcano`).

kubelet's Allocate for ``volcano.sh/vgpu-number`` carries only a device count. The pod is the
one volcano-scheduler placed on this node and has not finished allocating: bound here, not
finished or deleted, ``volcano.sh/vgpu-node`` this node, ``volcano.sh/bind-phase`` allocating,
and its next entry of ``volcano.sh/devices-to-allocate`` holds as many devices as kubelet asks
for (volcano-vgpu-device-plugin matches the total count instead); Pending pods first, then the
oldest ``volcano.sh/vgpu-time``. A pod whose list does not decode is taken (and failed, with the
reason) only when no other pod fits.

volcano's list has one entry per container whose limits name ``volcano.sh/vgpu-number`` or
``volcano.sh/vgpu-memory``, in ``spec.containers`` order (init containers get none), so the
i-th entry belongs to the i-th such container. Each container request takes the next non-empty
entry, which is erased (written back empty). When no entry is left: ``bind-phase`` success,
``vgpu-time`` 2^64-1, and the node's ``hamivgpu`` lock deleted, as volcano's plugin does.

A failure once the pod is found (an entry that does not decode, a count mismatch, a container
the policy refuses) sets ``bind-phase`` failed and ``vgpu-time`` 2^64-1, records a Warning
Event, deletes the lock and fails the call. With no pod to allocate, the lock is deleted too
(volcano's plugin does, so a node is not locked for 5 minutes by a pod that never comes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import hami_rustcore
from hami_common.deviceplugin.allocator import (
    AllocationFailed,
    NoPendingPod,
    answer_containers,
    failure_event,
    pod_annotations,
    pod_ref,
    preferred_ids,
)
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.k8s import EVENTS, PODS, ApiError, Conflict, KubeClient
from hami_common.protocol import volcano as vc
from opentelemetry import trace

from hami_plugin_nvidia.volcano import VolcanoPolicy

log = logging.getLogger(__name__)

Json = dict[str, Any]
_ATTEMPTS = 5


def vgpu_containers(pod: Json) -> list[Json]:
    """The containers volcano wrote an entry for, in its order."""
    return [
        c
        for c in (pod.get("spec") or {}).get("containers") or []
        if any(r in ((c.get("resources") or {}).get("limits") or {}) for r in vc.REQUEST_RESOURCES)
    ]


def _vgpu_time(pod: Json) -> int:
    try:
        return int(pod_annotations(pod).get(vc.VGPU_TIME, ""))
    except ValueError:
        return 2**64 - 1


class VolcanoAllocator:
    """Allocate calls of the ``volcano.sh/vgpu-number`` resource on one node, serialised."""

    def __init__(
        self,
        client: KubeClient,
        node: str,
        policy: VolcanoPolicy,
        *,
        tracer: trace.Tracer,
        component: str = "hami-plugin-nvidia",
    ) -> None:
        self.client = client
        self.node = node
        self.policy = policy
        self.tracer = tracer
        self.component = component
        self._lock = asyncio.Lock()

    # -- finding the pod ----------------------------------------------------------------------

    def _next_count(self, pod: Json) -> int | None:
        """Devices in the pod's next entry; ``None`` when nothing is left; -1 when the list
        does not decode (the pod is still a candidate: its allocation fails with the reason)."""
        try:
            entries = hami_rustcore.decode_volcano_pod_devices(
                pod_annotations(pod).get(vc.DEVICES_TO_ALLOCATE, "")
            )
        except hami_rustcore.DecodeError:
            return -1
        return next((len(e) for e in entries if e), None)

    async def find_pod(self, count: int | None = None) -> Json:
        listed = await self.client.list(PODS, field_selector=f"spec.nodeName={self.node}")
        candidates: list[tuple[bool, Json]] = []
        for pod in listed.get("items") or []:
            ann = pod_annotations(pod)
            if (
                (pod.get("metadata") or {}).get("deletionTimestamp")
                or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                or ann.get(vc.VGPU_NODE) != self.node
                or ann.get(vc.BIND_PHASE) != vc.PHASE_ALLOCATING
            ):
                continue
            left = self._next_count(pod)
            if left is not None and (count is None or left in (count, -1)):
                candidates.append((left == -1, pod))
        if not candidates:
            want = f" with {count} device(s) to allocate" if count is not None else ""
            raise NoPendingPod(f"no pod placed by volcano on node {self.node}{want}")
        # a pod whose list does not decode only when no pod's list says kubelet's count: it
        # must not take the Allocate of the pod kubelet is admitting
        return min(
            candidates,
            key=lambda c: (
                c[0],
                (c[1].get("status") or {}).get("phase") != "Pending",
                _vgpu_time(c[1]),
                pod_ref(c[1]),
            ),
        )[1]

    # -- Allocate -----------------------------------------------------------------------------

    async def allocate(self, request: pb.AllocateRequest) -> pb.AllocateResponse:
        async with self._lock:
            first = (
                len(request.container_requests[0].devices_ids)
                if request.container_requests
                else None
            )
            try:
                pod = await self.find_pod(first)
            except NoPendingPod:
                await self._release_lock()
                raise
            ns, name = pod_ref(pod)
            with self.tracer.start_as_current_span("Allocate") as span:
                span.set_attribute("k8s.pod.name", name)
                span.set_attribute("k8s.namespace.name", ns)
                span.set_attribute("k8s.node.name", self.node)
                try:
                    return await self._allocate(pod, request)
                except AllocationFailed as exc:
                    span.set_status(trace.StatusCode.ERROR, str(exc))
                    await self.fail(pod, str(exc))
                    raise

    async def _allocate(self, pod: Json, request: pb.AllocateRequest) -> pb.AllocateResponse:
        ns, name = pod_ref(pod)
        for attempt in range(_ATTEMPTS):
            response, updates = self._answer(pod, request)
            rv = str((pod.get("metadata") or {}).get("resourceVersion", ""))
            patch = {"metadata": {"resourceVersion": rv, "annotations": updates}}
            try:
                await self.client.patch(PODS, name, patch, namespace=ns)
            except Conflict:
                if attempt == _ATTEMPTS - 1:
                    raise
                pod = await self.client.get(PODS, name, namespace=ns)
                continue
            if updates.get(vc.BIND_PHASE) == vc.PHASE_SUCCESS:
                await self._release_lock()
            return response
        raise AssertionError("unreachable")

    def _answer(self, pod: Json, request: pb.AllocateRequest) -> tuple[pb.AllocateResponse, Json]:
        ann = pod_annotations(pod)
        try:
            entries = hami_rustcore.decode_volcano_pod_devices(ann.get(vc.DEVICES_TO_ALLOCATE, ""))
        except hami_rustcore.DecodeError as exc:
            raise AllocationFailed(f"annotation {vc.DEVICES_TO_ALLOCATE}: {exc}") from None
        response, _ = answer_containers(
            pod,
            request,
            entries,
            vgpu_containers(pod),
            key=vc.DEVICES_TO_ALLOCATE,
            policy=self.policy,
            vendor=vc.DEVICE_TYPE,
            only=" or ".join(vc.REQUEST_RESOURCES),
        )
        updates: Json = {vc.DEVICES_TO_ALLOCATE: hami_rustcore.encode_volcano_pod_devices(entries)}
        if not any(entries):
            updates[vc.BIND_PHASE] = vc.PHASE_SUCCESS
            updates[vc.VGPU_TIME] = vc.DONE_TIME
        return response, updates

    async def _release_lock(self) -> None:
        try:
            if await vc.release_lock(self.client, self.node):
                log.info("node %s: released volcano's lock %s", self.node, vc.NODE_LOCK)
        except ApiError as exc:
            log.error("node %s: could not release volcano's lock: %s", self.node, exc)

    # -- failure --------------------------------------------------------------------------------

    async def fail(self, pod: Json, message: str) -> None:
        """bind-phase failed, a Warning Event, the lock deleted; each step is attempted even
        when an earlier one fails."""
        ns, name = pod_ref(pod)
        log.warning("allocation of pod %s/%s failed: %s", ns, name, message)
        failed = {vc.BIND_PHASE: vc.PHASE_FAILED, vc.VGPU_TIME: vc.DONE_TIME}
        try:
            await self.client.patch(PODS, name, {"metadata": {"annotations": failed}}, namespace=ns)
        except ApiError as exc:
            log.error("pod %s/%s: could not mark bind-phase failed: %s", ns, name, exc)
        event = failure_event(pod, message, self.policy.resource_name, self.node, self.component)
        try:
            await self.client.create(EVENTS, event, namespace=ns)
        except ApiError as exc:
            log.error("pod %s/%s: could not record the failure event: %s", ns, name, exc)
        await self._release_lock()

    # -- GetPreferredAllocation ---------------------------------------------------------------

    async def preferred(
        self, request: pb.PreferredAllocationRequest, physical: Mapping[str, str]
    ) -> pb.PreferredAllocationResponse:
        """The replicas of the devices volcano chose for the pod, then the first available."""
        try:
            pod = await self.find_pod()
            text = pod_annotations(pod).get(vc.DEVICES_TO_ALLOCATE, "")
            entries = [e for e in hami_rustcore.decode_volcano_pod_devices(text) if e]
        except (NoPendingPod, hami_rustcore.DecodeError, ApiError):
            entries = []
        return preferred_ids(request, entries, physical)
