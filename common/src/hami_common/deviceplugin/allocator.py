"""The device plugin's side of HAMi's allocation protocol (reference §3.5, node-side §1.8).

kubelet's Allocate carries only a device count. The devices come from the pod being bound on
this node: the pod that holds the node lock (``hami.io/mutex.lock``) or, as HAMi does, a
Pending pod bound to this node with ``bind-phase`` allocating (then one whose status already
says Running while its devices are still being allocated). For each container request the
next non-empty entry of the vendor's to-allocate annotation is taken (its device count must
match), the rest is written back, and once no vendor has devices left ``bind-phase`` becomes
``success`` and the lock is released.

Failures after the pod is found (a malformed annotation, a count mismatch, a device the vendor
refuses) set ``bind-phase=failed``, record a Warning Event on the pod, release the lock and fail
the gRPC call; no other pod is read or written. Unlike HAMi, the lock holder is used only when it
is this node's pod and still has devices of this vendor to allocate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import hami_rustcore
from opentelemetry import trace

from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.vendor import (
    ContainerContext,
    VendorPolicy,
    containers_in_annotation_order,
)
from hami_common.k8s import EVENTS, NODES, PODS, ApiError, Conflict, KubeClient, NotFound
from hami_common.protocol import nodelock
from hami_common.protocol.annotations import (
    BIND_PHASE,
    BIND_TIME,
    NODE_LOCK,
    PHASE_ALLOCATING,
    PHASE_FAILED,
    PHASE_SUCCESS,
    VGPU_NODE,
)
from hami_common.telemetry import context_from_pod

log = logging.getLogger(__name__)

Json = dict[str, Any]
EVENT_REASON = "HAMiAllocationFailed"
_ATTEMPTS = 5


class NoPendingPod(Exception):  # noqa: N818 (HAMi's message)
    """No pod is being bound on this node: Allocate fails and nothing is changed."""


class AllocationFailed(Exception):  # noqa: N818
    """The pod's allocation cannot be honoured; the pod is marked failed."""


def pod_annotations(pod: Json) -> Mapping[str, str]:
    """The pod's annotations (none: empty)."""
    return (pod.get("metadata") or {}).get("annotations") or {}


def pod_ref(pod: Json) -> tuple[str, str]:
    """The pod's (namespace, name)."""
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def has_pending_devices(value: str | None) -> bool:
    """Whether a to-allocate value still lists a device (any vendor keyword, like HAMi)."""
    return bool(value) and "," in (value or "")


def to_allocate_values(annotations: Mapping[str, str]) -> dict[str, str]:
    """Every vendor's to-allocate annotation on a pod (``hami.io/*-devices-to-allocate``, and
    NVIDIA's ``hami.io/vgpu-devices-to-allocate``): a vendor this plugin does not know still
    keeps the pod from being marked done before its own plugin has allocated it."""
    return {
        k: v
        for k, v in annotations.items()
        if k.startswith("hami.io/") and k.endswith("-devices-to-allocate")
    }


def answer_containers(
    pod: Json,
    request: pb.AllocateRequest,
    entries: list[list[hami_rustcore.AllocDevice]],
    containers: Sequence[Json],
    *,
    key: str,
    policy: VendorPolicy,
    vendor: str | None = None,
    only: str | None = None,
) -> tuple[pb.AllocateResponse, list[ContainerContext]]:
    """The policy's answer to each container request of kubelet's Allocate, and the context of
    each. A request takes the next non-empty entry of ``entries`` (decoded from annotation
    ``key``), which is erased in place; the entry's index picks the container in ``containers``
    (``only``: the resources that give a container an entry, when not every container has one).
    The entry must have as many devices as kubelet asked for, all of type ``vendor`` (the
    policy's by default). Any failure, the policy's ``ValueError`` included, is
    ``AllocationFailed`` with the reason."""
    vendor = policy.vendor if vendor is None else vendor
    response = pb.AllocateResponse()
    contexts: list[ContainerContext] = []
    for creq in request.container_requests:
        idx = next((i for i, entry in enumerate(entries) if entry), None)
        if idx is None:
            raise AllocationFailed(
                f"kubelet asked for {len(creq.devices_ids)} device(s) but annotation "
                f"{key} has no container entry left"
            )
        entry, entries[idx] = entries[idx], []
        if idx >= len(containers):
            if only is None:
                raise AllocationFailed(
                    f"annotation {key} has an entry for container #{idx} but the pod "
                    f"has {len(containers)} container(s)"
                )
            raise AllocationFailed(
                f"annotation {key} has an entry #{idx} but the pod has "
                f"{len(containers)} container(s) with {only}"
            )
        if len(entry) != len(creq.devices_ids):
            raise AllocationFailed(
                f"device number not matched: kubelet asked for {len(creq.devices_ids)} "
                f"device(s), annotation {key} gives container "
                f"{containers[idx].get('name', idx)!r} {len(entry)}"
            )
        wrong = [d.vendor for d in entry if d.vendor != vendor]
        if wrong:
            raise AllocationFailed(
                f"annotation {key} lists a device of type {wrong[0]!r}, expected {vendor!r}"
            )
        ctx = ContainerContext(pod, idx, containers[idx], entry, list(creq.devices_ids))
        try:
            response.container_responses.append(policy.container_response(ctx))
        except ValueError as exc:
            raise AllocationFailed(str(exc)) from None
        contexts.append(ctx)
    return response, contexts


class PodAllocator(Protocol):
    """What the gRPC service asks of an allocation protocol: HAMi's (`Allocator`) or another
    scheduler's (the NVIDIA plugin's volcano mode). Both raise `NoPendingPod` and
    `AllocationFailed`."""

    async def allocate(self, request: pb.AllocateRequest) -> pb.AllocateResponse: ...

    async def preferred(
        self, request: pb.PreferredAllocationRequest, physical: Mapping[str, str]
    ) -> pb.PreferredAllocationResponse: ...


class Allocator:
    """Allocate calls of one vendor's plugin on one node, serialised."""

    def __init__(
        self,
        client: KubeClient,
        node: str,
        policy: VendorPolicy,
        *,
        to_allocate_keys: Mapping[str, str],
        tracer: trace.Tracer,
        component: str = "hami-device-plugin",
    ) -> None:
        """``tracer`` comes from the provider the entry point built (and shuts down, which
        exports the last spans): the Allocate span joins the pod's trace through it."""
        self.client = client
        self.node = node
        self.policy = policy
        self.key = to_allocate_keys[policy.vendor]
        self.all_keys = sorted(set(to_allocate_keys.values()))
        self.component = component
        self.tracer = tracer
        self._lock = asyncio.Lock()
        self._node_read: Json | None = None

    # -- finding the pod ----------------------------------------------------------------------

    def _candidate(self, pod: Json) -> bool:
        """Bound or reserved on this node, not finished, with devices of ours left."""
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return False
        ann = pod_annotations(pod)
        on_node = ((pod.get("spec") or {}).get("nodeName") or ann.get(VGPU_NODE)) == self.node
        return on_node and has_pending_devices(ann.get(self.key))

    async def find_pod(self) -> Json:
        node = await self.client.get(NODES, self.node, metadata_only=True)
        self._node_read = node
        value = ((node.get("metadata") or {}).get("annotations") or {}).get(NODE_LOCK)
        lock = nodelock.parse_lock(value) if value else None
        if lock is not None and lock.name:
            try:
                pod = await self.client.get(PODS, lock.name, namespace=lock.namespace)
                if self._candidate(pod):
                    return pod
            except NotFound:
                pass
        listed = await self.client.list(PODS, field_selector=f"spec.nodeName={self.node}")
        bound = [
            p
            for p in listed.get("items") or []
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and BIND_TIME in pod_annotations(p)
            and pod_annotations(p).get(BIND_PHASE) in (PHASE_ALLOCATING, PHASE_SUCCESS)
            and pod_annotations(p).get(VGPU_NODE) == self.node
            and self._candidate(p)
        ]
        # HAMi takes Pending pods only; a pod whose status already says Running (a kubelet
        # stand-in such as kwok reports it before Allocate) but whose devices are still being
        # allocated comes after them: a vendor whose lock names no owner (Cambricon's) finds
        # its pod this way
        pending = [p for p in bound if (p.get("status") or {}).get("phase") == "Pending"]
        if not bound:
            raise NoPendingPod(f"no binding pod found on node {self.node}")
        return min(pending or bound, key=lambda p: pod_annotations(p).get(BIND_TIME, ""))

    def _lock_held_by(self, namespace: str, name: str) -> bool:
        """Whether the node read of this Allocate's pod lookup showed the pod holding the node
        lock. A scheduler takes the lock before the Binding, so before kubelet can call
        Allocate: a pod the read did not show holding it holds none (a scheduler that keeps
        the lock in memory, ``--node-lock memory``), and there is nothing to release, nor a
        node to read again."""
        node = self._node_read or {}
        value = ((node.get("metadata") or {}).get("annotations") or {}).get(NODE_LOCK)
        lock = nodelock.parse_lock(value) if value else None
        return lock is not None and lock.owned_by(namespace, name)

    # -- Allocate -----------------------------------------------------------------------------

    async def allocate(self, request: pb.AllocateRequest) -> pb.AllocateResponse:
        async with self._lock:
            pod = await self.find_pod()
            with self.tracer.start_as_current_span(
                "Allocate", context=context_from_pod(pod)
            ) as span:
                ns, name = pod_ref(pod)
                span.set_attribute("k8s.pod.name", name)
                span.set_attribute("k8s.namespace.name", ns)
                span.set_attribute("k8s.node.name", self.node)
                try:
                    return await self._allocate(pod, request, span)
                except AllocationFailed as exc:
                    span.set_status(trace.StatusCode.ERROR, str(exc))
                    await self.fail(pod, str(exc))
                    raise

    async def _allocate(
        self, pod: Json, request: pb.AllocateRequest, span: trace.Span
    ) -> pb.AllocateResponse:
        for attempt in range(_ATTEMPTS):
            response, patch, given = self._answer(pod, request)
            ns, name = pod_ref(pod)
            try:
                await self.client.patch(PODS, name, patch, namespace=ns)
            except Conflict:
                if attempt == _ATTEMPTS - 1:
                    raise
                pod = await self.client.get(PODS, name, namespace=ns)
                continue
            # what this call handed out: per container, the entry of the annotation
            span.set_attribute("hami.allocate.containers", [name for name, _ in given])
            span.set_attribute(
                "hami.allocate.devices", hami_rustcore.encode_pod_devices([e for _, e in given])
            )
            phase = patch["metadata"]["annotations"].get(BIND_PHASE, PHASE_ALLOCATING)
            span.set_attribute("hami.allocate.bind_phase", phase)
            if phase == PHASE_SUCCESS and self._lock_held_by(ns, name):
                # the node read of the pod lookup saves a GET unless the node moved since
                await nodelock.release(self.client, self.node, ns, name, known=self._node_read)
            done = not has_pending_devices(patch["metadata"]["annotations"][self.key])
            await self.policy.release_locks(self.client, self.node, pod, done=done)
            return response
        raise AssertionError("unreachable")

    def _answer(
        self, pod: Json, request: pb.AllocateRequest
    ) -> tuple[pb.AllocateResponse, Json, list[tuple[str, list[hami_rustcore.AllocDevice]]]]:
        """The response, the pod patch (the vendor's own annotations in it), and (container
        name, devices) per container."""
        ann = pod_annotations(pod)
        try:
            entries = hami_rustcore.decode_pod_devices(ann.get(self.key, ""))
        except hami_rustcore.DecodeError as exc:
            raise AllocationFailed(f"annotation {self.key}: {exc}") from None
        containers = containers_in_annotation_order(pod)
        response, contexts = answer_containers(
            pod, request, entries, containers, key=self.key, policy=self.policy
        )
        given = [(str(c.container.get("name", c.index)), list(c.devices)) for c in contexts]
        remaining = hami_rustcore.encode_pod_devices(entries)
        try:
            updates: dict[str, str] = dict(self.policy.allocated_annotations(pod, contexts))
        except ValueError as exc:
            raise AllocationFailed(str(exc)) from None
        updates[self.key] = remaining
        known = {k: ann.get(k) for k in self.all_keys}
        others = [v for k, v in {**known, **to_allocate_values(ann)}.items() if k != self.key]
        if not has_pending_devices(remaining) and not any(map(has_pending_devices, others)):
            updates[BIND_PHASE] = PHASE_SUCCESS
        rv = str((pod.get("metadata") or {}).get("resourceVersion", ""))
        patch: Json = {"metadata": {"resourceVersion": rv, "annotations": updates}}
        return response, patch, given

    # -- failure --------------------------------------------------------------------------------

    async def fail(self, pod: Json, message: str) -> None:
        """bind-phase=failed, a Warning Event on the pod, and the lock released; each step is
        attempted even when an earlier one fails."""
        ns, name = pod_ref(pod)
        log.warning("allocation of pod %s/%s failed: %s", ns, name, message)
        try:
            await self.client.patch(
                PODS, name, {"metadata": {"annotations": {BIND_PHASE: PHASE_FAILED}}}, namespace=ns
            )
        except ApiError as exc:
            log.error("pod %s/%s: could not mark bind-phase failed: %s", ns, name, exc)
        try:
            await self.client.create(EVENTS, self._event(pod, message), namespace=ns)
        except ApiError as exc:
            log.error("pod %s/%s: could not record the failure event: %s", ns, name, exc)
        try:
            await nodelock.release(self.client, self.node, ns, name)
        except ApiError as exc:
            log.error("node %s: could not release the lock of %s/%s: %s", self.node, ns, name, exc)
        try:
            await self.policy.release_locks(self.client, self.node, pod, done=True)
        except ApiError as exc:
            log.error(
                "node %s: could not release %s's lock: %s", self.node, self.policy.vendor, exc
            )

    def _event(self, pod: Json, message: str) -> Json:
        return failure_event(pod, message, self.policy.resource_name, self.node, self.component)

    # -- GetPreferredAllocation ---------------------------------------------------------------

    async def preferred(
        self, request: pb.PreferredAllocationRequest, physical: Mapping[str, str]
    ) -> pb.PreferredAllocationResponse:
        """HAMi's preference: the replicas of the devices annotated for the pod being bound;
        without such a pod, the first available IDs. ``physical`` maps virtual to physical IDs."""
        try:
            pod = await self.find_pod()
            entries = [
                e
                for e in hami_rustcore.decode_pod_devices(pod_annotations(pod).get(self.key, ""))
                if e
            ]
        except (NoPendingPod, hami_rustcore.DecodeError, ApiError):
            entries = []
        return preferred_ids(request, entries, physical)


def failure_event(pod: Json, message: str, resource: str, node: str, component: str) -> Json:
    """The Warning Event (`EVENT_REASON`) that tells the pod's owner why its allocation of
    ``resource`` on ``node`` failed."""
    meta = pod.get("metadata") or {}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {
            "generateName": f"{meta.get('name', 'pod')}.",
            "namespace": meta.get("namespace"),
        },
        "involvedObject": {
            "kind": "Pod",
            "apiVersion": "v1",
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        },
        "reason": EVENT_REASON,
        "message": f"{resource} on node {node}: {message}",
        "type": "Warning",
        "source": {"component": component, "host": node},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": f"{component}-{node}",
    }


def preferred_ids(
    request: pb.PreferredAllocationRequest,
    entries: Sequence[Sequence[hami_rustcore.AllocDevice]],
    physical: Mapping[str, str],
) -> pb.PreferredAllocationResponse:
    """Per container request: the replicas of the devices of the matching entry first, then the
    first available IDs. ``physical`` maps virtual to physical IDs."""
    response = pb.PreferredAllocationResponse()
    for i, creq in enumerate(request.container_requests):
        chosen: list[str] = list(creq.must_include_deviceIDs)
        available = [d for d in creq.available_deviceIDs if d not in chosen]
        wanted: Sequence[str] = [d.uuid for d in entries[i]] if i < len(entries) else []
        for uuid in wanted:
            pick = next((d for d in available if physical.get(d) == uuid), None)
            if pick is not None and len(chosen) < creq.allocation_size:
                chosen.append(pick)
                available.remove(pick)
        while len(chosen) < creq.allocation_size and available:
            chosen.append(available.pop(0))
        response.container_responses.add(deviceIDs=chosen)
    return response


def now_unix() -> str:
    return str(int(time.time()))
