"""The extender's two verbs over the core's in-memory state.

`filter` runs fit and score in the core (one best node, as HAMi does), reserves the devices in
memory, and either writes HAMi's pod annotations at once (``persist_reservation=filter``, as
HAMi does) or leaves the write to bind (``bind``, the default: the scheduling cycle, which is
serial, never waits on the API). Either way a reservation that is not bound within the TTL is
released, and a bind finds its reservation in memory or refuses (kube-scheduler then filters the
pod again), so a restart or a handover between filter and bind can never double-book.

`bind` takes the node lock (`hami_common.protocol.nodelock`: CAS, exact owner, no expiry while
the holder lives), writes the allocation (when not yet written), ``bind-phase=allocating`` and
``bind-time`` with the pod's UID as a precondition, then creates the Binding; on any failure it
releases the lock and answers the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import hami_rustcore as core
from hami_common.k8s import PODS, ApiError, Conflict, KubeClient, NotFound
from hami_common.protocol import mlulock, nodelock
from hami_common.protocol.annotations import BIND_PHASE, BIND_TIME, PHASE_ALLOCATING, VGPU_NODE
from hami_common.telemetry import context_from_pod
from opentelemetry.trace import Span, StatusCode, Tracer

from hami_extender.annotations import allocation_annotations
from hami_extender.events import EventSink
from hami_extender.explain import MAX_NODE_REASONS, Explanations, failure_summary
from hami_extender.inventory import ObjectError, node_inventory
from hami_extender.metrics import ExtenderMetrics
from hami_extender.pending import PendingPods
from hami_extender.settings import ExtenderSettings
from hami_extender.sync import Pending, StateSync
from hami_extender.wire import (
    BindArgs,
    FilterArgs,
    WireError,
    bind_result,
    filter_result,
    parse_bind_args,
    parse_filter_args,
)

log = logging.getLogger(__name__)
Json = dict[str, Any]
# bind refusals about a pod that is not ours to bind: no Event is written on it
NOT_OUR_POD = frozenset({"other-scheduler", "wrong-pod"})


def _devices_text(devices: list[list[core.AllocDevice]]) -> str:
    return core.encode_pod_devices(devices)


def server_minor(version: Json) -> tuple[int, int]:
    """``(major, minor)`` of an API server's /version (``"36+"`` reads as 36); (0, 0) when it
    cannot be read."""
    try:
        major = int(str(version.get("major", "")).rstrip("+"))
        minor = int(str(version.get("minor", "")).rstrip("+"))
    except ValueError:
        return (0, 0)
    return (major, minor)


def _top_reason(reasons: dict[str, int], failed: int) -> str:
    if reasons:
        return max(reasons.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return core.NODE_UNREGISTERED if failed else "no-candidates"


class Extender:
    def __init__(
        self,
        settings: ExtenderSettings,
        *,
        cluster: core.Cluster,
        sync: StateSync,
        client: KubeClient,
        events: EventSink,
        explanations: Explanations,
        metrics: ExtenderMetrics,
        tracer: Tracer,
        is_leader: Callable[[], bool],
        pending: PendingPods | None = None,
    ) -> None:
        """``pending``: the pods of our scheduler still to be placed (the burst to come, see
        ``_fit``); without it each pod is placed as if it were the last."""
        self.settings = settings
        self.pending = pending
        self.cluster = cluster
        self.sync = sync
        self.client = client
        self.events = events
        self.explain = explanations
        self.metrics = metrics
        self.tracer = tracer
        self.is_leader = is_leader
        self.specs = cluster.vendor_specs()
        self._gates: dict[str, asyncio.Lock] = {}  # binds to one node take its lock in turn
        self._carries: bool | None = None  # see _binding_carries_metadata
        self._labels_checked = False  # see _check_binding_labels
        self._live: dict[str, str] = {}  # node -> lock holder (ns/name) judged live (see _lock)

    # -- filter ------------------------------------------------------------------------------

    async def filter(self, body: bytes) -> bytes:
        started = time.perf_counter()
        try:
            args = parse_filter_args(body)
        except WireError as exc:
            self.metrics.decisions.labels("filter", "error", "bad-request").inc()
            return filter_result(error=str(exc))
        not_ready = await self._not_ready()
        if not_ready:
            self.metrics.decisions.labels("filter", "error", "not-ready").inc()
            return filter_result(error=not_ready)
        with self.tracer.start_as_current_span(
            "filter",
            context=context_from_pod(args.pod),
            attributes={"k8s.namespace.name": args.namespace, "k8s.pod.name": args.name,
                        "k8s.pod.uid": args.uid},
        ) as span:  # fmt: skip
            try:
                answer = await self._filter(args, span)
            except WireError as exc:
                span.set_status(StatusCode.ERROR, "bad request")
                self.metrics.decisions.labels("filter", "error", "bad-request").inc()
                answer = filter_result(error=str(exc))
            except Exception as exc:  # a bug: answer, never drop the scheduler's request
                log.exception("filter of %s failed", args.key)
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, type(exc).__name__)
                self.metrics.decisions.labels("filter", "error", "internal").inc()
                answer = filter_result(error=f"hami-extender failed on this pod ({exc!r})")
        self.metrics.filter_latency.observe(time.perf_counter() - started)
        return answer

    async def _not_ready(self) -> str:
        if not self.sync.synced and not await self.sync.wait_synced(
            self.settings.sync_wait_seconds
        ):
            return "hami-extender is still loading nodes and pods from the API; retry shortly"
        if not self.is_leader():
            return "this hami-extender replica is a standby (not the leader); retry shortly"
        return ""

    async def _filter(self, args: FilterArgs, span: Span) -> bytes:
        try:
            request = self.cluster.pod_request(args.pod_json)
        except core.CoreError as exc:
            self.metrics.decisions.labels("filter", "error", "bad-pod").inc()
            span.set_status(StatusCode.ERROR, "bad pod")
            return filter_result(error=f"pod {args.key}: {exc}")
        if not request.has_devices():
            self.metrics.decisions.labels("filter", "passthrough", "no-devices").inc()
            return filter_result(node_names=args.node_names, nodes=args.nodes)
        if args.scheduler_name != self.settings.scheduler_name:
            return self._other_scheduler(args, span)
        if args.nodes is not None:
            return self._simulate(args, request, span)
        now = time.time()
        names = args.node_names if args.node_names is not None else core.NodeNames([])
        try:
            result = self._fit(request, names, now, args.uid)
        except core.CoreError as exc:  # bound already: kube-scheduler has not seen it yet
            self.metrics.decisions.labels("filter", "error", "already-bound").inc()
            span.set_status(StatusCode.ERROR, "already bound")
            return filter_result(error=str(exc))
        # the per-node reasons stay in the core: JSON for the answer, the first few for people
        failed = dict(result.failed_head(MAX_NODE_REASONS))
        span.set_attributes(
            failure_summary(len(names), result.failed_count, failed, result.reasons)
        )
        if self.pending is not None:
            self.pending.answered(args.uid)
        if result.node is None:
            return self._unschedulable(args, result, failed, span, request)
        node, devices = result.node, result.devices
        annotations, allocated = allocation_annotations(
            node, devices, self.specs, now, result.annotations
        )
        text = _devices_text(devices)
        span.set_attribute("hami.filter.node", node)
        span.set_attribute("hami.filter.devices", text)
        span.set_attribute("hami.filter.score", result.score)
        pending = Pending(node, annotations, allocated, context_from_pod(args.pod), now)
        if self.settings.persist_reservation == "filter":
            error = await self._persist(args, annotations)
            if error:
                self.cluster.remove_pod(args.uid)
                self.sync.pending.pop(args.uid, None)
                self.metrics.decisions.labels("filter", "error", "patch-failed").inc()
                self.events.emit(args.namespace, args.name, args.uid, "FilteringFailed",
                                 error, warning=True)  # fmt: skip
                span.set_status(StatusCode.ERROR, "patch failed")
                return filter_result(error=error)
            pending.annotations = {}  # written
        self.sync.pending[args.uid] = pending
        self.metrics.decisions.labels("filter", "placed", "fit").inc()
        self.explain.record(args.namespace, args.name, args.uid, {
            "step": "filter", "outcome": "placed", "node": node, "devices": text,
            "score": result.score, "failed": failed, "reasons": result.reasons,
            "nodes_failed": result.failed_count,
            "trace_id": f"{span.get_span_context().trace_id:032x}",
        })  # fmt: skip
        # the chosen node alone, as HAMi answers: the other nodes' reasons (~150 KB at 5,000
        # nodes) would only be discarded by kube-scheduler; they stay in the explanation API
        # and the filter span. When nothing fits, every node's reason is in the answer.
        return filter_result(node_names=[node])

    def _fit(
        self, request: core.PodRequest, names: core.NodeNames, now: float, uid: str
    ) -> core.FilterResult:
        """The best node. A bind on a node with an allocation in flight (the core counts
        unbound reservations and held node locks) waits until the plugin has allocated the
        previous pod there, and kube-scheduler filters the next pods long before that, so with
        the policy alone every pod of a burst would queue on one node. With binpack, the pod
        goes to the node with the fewest in flight among the (at most ``burst_window``) nodes
        packing fills next with the pods still pending; with ``prefer_idle_nodes``, among all
        fitting nodes."""
        backlog = self.pending.backlog(uid) if self.pending is not None else 0
        return self.cluster.filter(
            request, names, reserve=True, now=now, prefer_idle=self.settings.prefer_idle_nodes,
            backlog=backlog, window=self.settings.burst_window,
        )  # fmt: skip

    def _other_scheduler(self, args: FilterArgs, span: Span) -> bytes:
        """A device pod of another scheduler (kube-scheduler calls its extenders for every
        profile): an error, and nothing reserved, so that its own scheduler's view stands."""
        ours = self.settings.scheduler_name
        message = (f"pod {args.key} names schedulerName {args.scheduler_name!r}; this "
                   f"hami-extender places only pods of {ours!r} (the webhook sets it on device "
                   "pods)")  # fmt: skip
        self.metrics.decisions.labels("filter", "error", "other-scheduler").inc()
        span.set_status(StatusCode.ERROR, "other scheduler")
        self.explain.record(args.namespace, args.name, args.uid, {
            "step": "filter", "outcome": "refused", "message": message,
            "trace_id": f"{span.get_span_context().trace_id:032x}",
        })  # fmt: skip
        return filter_result(error=message)

    def _unschedulable(
        self,
        args: FilterArgs,
        result: core.FilterResult,
        failed: dict[str, str],
        span: Span,
        request: core.PodRequest,
    ) -> bytes:
        reasons, count = result.reasons, result.failed_count
        top = _top_reason(reasons, count)
        self.metrics.decisions.labels("filter", "unschedulable", top).inc()
        span.set_attribute("hami.filter.node", "")
        detail = ", ".join(f"{n} devices {r}" for r, n in sorted(reasons.items()))
        unregistered = result.unregistered_count
        if unregistered:
            detail = f"{detail}, " if detail else ""
            detail += f"{unregistered} nodes unregistered (no device plugin annotation)"
        message = f"no available node, {count} nodes do not meet: {detail or 'no nodes'}"
        vendors = sorted({d.vendor for c in request.containers for d in c.devices if d.count})
        if len(vendors) > 1:
            message += (
                f"; the pod asks for devices of {len(vendors)} vendors at once "
                f"({', '.join(vendors)}), so only a node that has all of them can take it: "
                "split it into one pod per vendor, or add such a node"
            )
        span.set_attribute("hami.filter.message", message)  # why it stays pending, for people
        self.events.emit(args.namespace, args.name, args.uid, "FilteringFailed", message,
                         warning=True)  # fmt: skip
        self.explain.record(args.namespace, args.name, args.uid, {
            "step": "filter", "outcome": "unschedulable", "failed": failed, "reasons": reasons,
            "nodes_failed": count, "message": message,
            "trace_id": f"{span.get_span_context().trace_id:032x}",
        })  # fmt: skip
        return filter_result(node_names=[], failed=result.failed_json())

    def _simulate(self, args: FilterArgs, request: core.PodRequest, span: Span) -> bytes:
        """``Nodes`` given (nodeCacheCapable: false): fit on those nodes' own annotations with
        no usage, no reservation and no side effects (HAMi's dry-run path)."""
        scratch = core.Cluster(
            self.cluster.node_policy, self.cluster.gpu_policy, vendors=self.settings.vendors()
        )
        by_name: dict[str, Json] = {}
        for node in args.nodes or []:
            try:
                inv = node_inventory(node, self.specs)
            except ObjectError:
                continue
            by_name[inv.name] = node
            if inv.devices:
                scratch.set_node(inv.name, inv.devices, inv.pair_scores, inv.cordoned)
        names = [str((n.get("metadata") or {}).get("name", "")) for n in args.nodes or []]
        result = scratch.filter(request, names, reserve=False)
        span.set_attribute("hami.filter.simulation", True)
        outcome = "simulated" if result.node else "unschedulable"
        self.metrics.decisions.labels("filter", outcome, "simulation").inc()
        chosen = [by_name[result.node]] if result.node in by_name else []
        return filter_result(failed=result.failed_json(), nodes=chosen)

    async def _persist(self, args: FilterArgs, annotations: dict[str, str]) -> str:
        """Merge-patch the allocation with the pod's resourceVersion (optimistic concurrency);
        on a conflict, re-read once and retry if the pod is still the same, unbound one."""
        meta = args.pod.get("metadata") or {}
        rv = meta.get("resourceVersion")
        node = annotations[VGPU_NODE]
        for _ in range(2):
            patch: Json = {"metadata": {"uid": args.uid, "labels": {VGPU_NODE: node},
                                        "annotations": annotations}}  # fmt: skip
            if rv:
                patch["metadata"]["resourceVersion"] = rv
            try:
                await self.client.patch(PODS, args.name, patch, namespace=args.namespace)
                return ""
            except Conflict:
                try:
                    fresh = await self.client.get(PODS, args.name, namespace=args.namespace)
                except ApiError as exc:
                    return f"pod {args.key} changed and could not be re-read: {exc}"
                if (fresh.get("metadata") or {}).get("uid") != args.uid or (
                    fresh.get("spec") or {}
                ).get("nodeName"):
                    return f"pod {args.key} was replaced or bound meanwhile; not reserving"
                rv = fresh["metadata"].get("resourceVersion")
            except ApiError as exc:
                return f"could not write the allocation to pod {args.key}: {exc}"
        return f"pod {args.key} kept changing while its allocation was written; retry"

    # -- bind --------------------------------------------------------------------------------

    async def bind(self, body: bytes) -> bytes:
        started = time.perf_counter()
        try:
            args = parse_bind_args(body)
        except WireError as exc:
            self.metrics.decisions.labels("bind", "error", "bad-request").inc()
            return bind_result(str(exc))
        if not self.is_leader():
            self.metrics.decisions.labels("bind", "error", "not-leader").inc()
            return bind_result("this hami-extender replica is a standby; the pod will be retried")
        pending = self.sync.pending.get(args.uid)
        with self.tracer.start_as_current_span(
            "bind",
            context=pending.parent if pending else None,
            attributes={"k8s.namespace.name": args.namespace, "k8s.pod.name": args.name,
                        "k8s.pod.uid": args.uid, "k8s.node.name": args.node},
        ) as span:  # fmt: skip
            try:
                error, reason = await self._bind(args, pending, span)
            except Exception as exc:
                log.exception("bind of %s failed", args.key)
                span.record_exception(exc)
                error, reason = f"hami-extender failed to bind ({exc!r})", "internal"
            if error:
                span.set_status(StatusCode.ERROR, reason)
                self.metrics.decisions.labels("bind", "error", reason).inc()
                if reason not in NOT_OUR_POD:  # no Event on a pod another scheduler owns
                    self.events.emit(args.namespace, args.name, args.uid, "BindingFailed",
                                     error, warning=True)  # fmt: skip
            else:
                self.metrics.decisions.labels("bind", "bound", "ok").inc()
                if self.settings.binding_events:  # kube-scheduler records Scheduled anyway
                    self.events.emit(args.namespace, args.name, args.uid, "BindingSucceed",
                                     f"Successfully binding node [{args.node}] to {args.key}",
                                     warning=False, exists=True)  # fmt: skip
            self.explain.record(args.namespace, args.name, args.uid, {
                "step": "bind", "outcome": "failed" if error else "bound", "node": args.node,
                "error": error, "trace_id": f"{span.get_span_context().trace_id:032x}",
            })  # fmt: skip
        self.metrics.bind_latency.observe(time.perf_counter() - started)
        return bind_result(error)

    async def _bind(self, args: BindArgs, pending: Pending | None, span: Span) -> tuple[str, str]:
        error, reason = await self._may_bind(args, pending)
        if error:
            return error, reason
        held = self.cluster.pod(args.uid)
        assert held is not None  # noqa: S101  # checked, and nothing awaited since
        span.set_attribute("hami.bind.devices", _devices_text(held.devices))
        # HAMi's locks: hami.io/mutex.lock for every vendor but Cambricon, whose MLUs take
        # cambricon.com/dsmlu.lock of their own (a pod with both takes both)
        kinds = {str(self.specs[d.vendor].get("kind", "")) for c in held.devices for d in c
                 if d.vendor in self.specs}  # fmt: skip
        mutex = bool(kinds - {"cambricon"})
        memory = self.settings.node_lock == "memory"
        error = (await self._claim(args) if memory else await self._lock(args)) if mutex else ""
        mlu_lock: str | None = None
        if not error and "cambricon" in kinds:
            mlu_lock, error = await self._mlu_lock(args)
            if error and mutex:
                await self._release_lock(args)
        if error:
            if self.settings.persist_reservation == "bind":  # nothing written yet: let the
                self.cluster.remove_pod(args.uid)  # retry choose a node whose lock is free
                self.sync.pending.pop(args.uid, None)
            return error, "lock-contention"
        if mutex and not memory:
            self.sync.locked.add(args.node)  # until the node watch shows the plugin released it
        changed = self._reservation_changed(args, held, pending)
        if not changed and not self.is_leader():  # lost the Lease while this bind waited
            changed = f"this replica stopped leading while pod {args.key} waited; not binding"
        if changed:  # while this bind waited for the lock: its allocation is no longer ours
            await self._release_locks(args, mutex, mlu_lock)
            return changed, "reservation-changed"
        annotations = dict(pending.annotations) if pending else {}
        annotations[BIND_PHASE] = PHASE_ALLOCATING
        annotations[BIND_TIME] = str(int(time.time()))
        labels = {VGPU_NODE: args.node}
        binding: Json = {
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": args.name, "namespace": args.namespace, "uid": args.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": args.node},
        }  # fmt: skip
        try:
            carried = await self._binding_carries_metadata()
            if carried:
                binding["metadata"].update(annotations=annotations, labels=labels)
            else:
                patch = {"metadata": {"uid": args.uid, "labels": labels,
                                      "annotations": annotations}}  # fmt: skip
                await self.client.patch(PODS, args.name, patch, namespace=args.namespace)
            await self.client.create(PODS, binding, namespace=args.namespace, name=args.name,
                                     subresource="binding")  # fmt: skip
        except ApiError as exc:
            released = await self._release_locks(args, mutex, mlu_lock)
            return (
                f"binding {args.key} to {args.node} failed: {exc}"
                f"{'' if released else ' (the node lock could not be released)'}",
                "api-error",
            )
        self.cluster.mark_bound(args.uid)
        self.sync.pending.pop(args.uid, None)
        if carried and not self._labels_checked:
            await self._check_binding_labels(args)
        return "", ""

    def _reservation_changed(
        self, args: BindArgs, held: core.PodAllocation, pending: Pending | None
    ) -> str:
        """Why the pod's reservation is no longer the one this bind checked, or "": a bind can
        wait for a node's lock for a while, and meanwhile the reservation may expire, or
        kube-scheduler (its bind call timed out) may filter the pod again and get other
        devices. Binding with the old allocation would then book devices the state no longer
        holds for the pod."""
        now = self.cluster.pod(args.uid)
        if now is None or now.reserved_at is None:
            state = "expired" if now is None else "was bound by another call"
            return f"the reservation of pod {args.key} {state} while its bind waited; not binding"
        if (
            now.node != held.node
            or now.devices != held.devices
            or (pending is not None and self.sync.pending.get(args.uid) is not pending)
        ):
            return (f"pod {args.key} was placed again (on node {now.node}) while this bind "
                    "waited; not binding with the earlier placement")  # fmt: skip
        return ""

    async def _release_locks(self, args: BindArgs, mutex: bool, mlu_lock: str | None) -> bool:
        """Releases the locks this bind took; whether every one was released."""
        if mutex and self.settings.node_lock == "memory":
            self.sync.allocating.release(args.uid)
            mutex = False
        released = await self._release_lock(args) if mutex else True
        if mlu_lock is not None:
            released = await self._release_mlu_lock(args, mlu_lock) and released
        if released:
            self.sync.locked.discard(args.node)
        return released

    async def _may_bind(self, args: BindArgs, pending: Pending | None) -> tuple[str, str]:
        """Whether this extender may bind the pod: it holds a reservation for exactly that pod
        (UID, namespace and name) on that node, not yet bound, and either its own filter made
        it (in memory: the filter checked the scheduler name) or the allocation is on the pod
        (``persist_reservation=filter`` by a previous leader, found by the pod watch), which
        one read then confirms: same UID, our scheduler, unbound, labelled for that node. The
        error and its reason when not; nothing is written either way."""
        held = self.cluster.pod(args.uid)
        if held is None or held.node != args.node:
            where = f"on node {held.node}" if held else "(none, or it expired)"
            return (
                f"pod {args.key} has no device reservation on node {args.node} {where}; "
                "it will be filtered again", "no-reservation",
            )  # fmt: skip
        if ((held.namespace or "default"), held.name) != (args.namespace, args.name):
            return (f"pod UID {args.uid} is {held.namespace}/{held.name}, not {args.key}; "
                    "not binding", "wrong-pod")  # fmt: skip
        if held.reserved_at is None:
            return f"pod {args.key} is bound already", "already-bound"
        if pending is not None and pending.node == args.node:
            return "", ""
        try:
            pod = await self.client.get(PODS, args.name, namespace=args.namespace)
        except NotFound:
            return f"pod {args.key} does not exist", "no-reservation"
        except ApiError as exc:
            return f"could not read pod {args.key} to check its allocation: {exc}", "api-error"
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        scheduler = spec.get("schedulerName") or "default-scheduler"
        if meta.get("uid") != args.uid:
            return (f"pod {args.key} was replaced (UID {meta.get('uid')}, not {args.uid}); "
                    "not binding", "wrong-pod")  # fmt: skip
        if scheduler != self.settings.scheduler_name:
            ours = self.settings.scheduler_name
            return (f"pod {args.key} names schedulerName {scheduler!r}, not {ours!r}; "
                    "not binding", "other-scheduler")  # fmt: skip
        if spec.get("nodeName"):
            return f"pod {args.key} is bound already, to {spec['nodeName']}", "already-bound"
        if (meta.get("labels") or {}).get(VGPU_NODE) != args.node:
            return (f"pod {args.key} carries no allocation for node {args.node}; it will be "
                    "filtered again", "no-reservation")  # fmt: skip
        return "", ""

    async def _check_binding_labels(self, args: BindArgs) -> None:
        """Once per process, read back the first pod bound with its metadata on the Binding: an
        API server that does not copy a Binding's labels (PodTopologyLabelsAdmission turned
        off) would leave the pod without ``hami.io/vgpu-node``, hiding it from the pod watch
        that rebuilds the state after a restart. Then the label is patched on and every later
        bind patches first, as HAMi does."""
        try:
            pod = await self.client.get(PODS, args.name, namespace=args.namespace)
        except ApiError:
            return  # checked on the next bind
        self._labels_checked = True
        if ((pod.get("metadata") or {}).get("labels") or {}).get(VGPU_NODE) == args.node:
            return
        log.warning("the API server did not copy the Binding's labels onto pod %s; patching "
                    "the allocation before each Binding from now on", args.key)  # fmt: skip
        self._carries = False
        patch = {"metadata": {"uid": args.uid, "labels": {VGPU_NODE: args.node}}}
        try:
            await self.client.patch(PODS, args.name, patch, namespace=args.namespace)
        except ApiError as exc:
            log.warning("could not label pod %s: %s", args.key, exc)

    async def _binding_carries_metadata(self) -> bool:
        """Whether the allocation annotations and the ``hami.io/vgpu-node`` label ride on the
        Binding: the API server copies a Binding's annotations onto the pod, and its labels from
        Kubernetes 1.35 (PodTopologyLabelsAdmission, on by default), in the same write that sets
        ``nodeName``. One API write per pod fewer than a patch first (as HAMi does), and the pod
        never shows an allocation without its node. Decided once (``bind_metadata``)."""
        if self._carries is None:
            mode = self.settings.bind_metadata
            if mode != "auto":
                self._carries = mode == "binding"
            else:
                try:
                    version = await self.client.version()
                except ApiError as exc:
                    log.warning("could not read the API server version (%s); patching the "
                                "allocation onto pods before their Binding", exc)  # fmt: skip
                    version = {}
                self._carries = server_minor(version) >= (1, 35)
                how = "on the Binding" if self._carries else "patched before the Binding"
                log.info("bind: allocation metadata %s (API server %s)", how, version)
        return self._carries

    async def _claim(self, args: BindArgs) -> str:
        """``--node-lock memory``: wait (up to ``lock_wait_seconds``, binds to one node in
        arrival order) until no other pod of the node is being allocated, as the pod watch
        shows it, then hold the node for this pod until the watch shows its phase move on. No
        API call (`hami_extender.allocating`)."""
        deadline = time.monotonic() + self.settings.lock_wait_seconds
        gate = self._gates.setdefault(args.node, asyncio.Lock())
        waited = f"for longer than {self.settings.lock_wait_seconds:g}s; the pod will be retried"
        try:
            async with asyncio.timeout(self.settings.lock_wait_seconds):
                await gate.acquire()
        except TimeoutError:
            return f"node {args.node} has binds queued {waited}"
        try:
            allocating = self.sync.allocating
            if not await allocating.wait_free(args.node, args.uid, deadline - time.monotonic()):
                holders = sorted(self.sync.pods.get(u, u) for u in allocating.holders(args.node))
                return f"node {args.node} is allocating pod {', '.join(holders)} {waited}"
            allocating.hold(args.node, args.uid)
            return ""
        finally:
            gate.release()

    async def _lock(self, args: BindArgs) -> str:
        """Take the node lock, waiting up to ``lock_wait_seconds`` for a live holder. Binds to one
        node queue here, in this process, and a held lock is waited out on the node watch (which
        shows the plugin's release) rather than by polling the API: polling from many parallel
        binds slowed the API server, and so the plugin's releases, for everyone. A holder already
        judged live (the pod we locked for, or one a read found live) is not read again while
        the watch shows it still holding: a burst's queue on one node costs no reads; at the
        deadline the lock is judged afresh, so a holder that died is still found stale."""
        deadline = time.monotonic() + self.settings.lock_wait_seconds
        gate = self._gates.setdefault(args.node, asyncio.Lock())
        try:
            async with asyncio.timeout(self.settings.lock_wait_seconds):
                await gate.acquire()
        except TimeoutError:
            return (f"node {args.node} has binds queued for its lock for longer than "
                    f"{self.settings.lock_wait_seconds:g}s; the pod will be retried")  # fmt: skip
        try:
            while True:
                holder = self._watched_holder(args.node)
                if holder is not None and holder == self._live.get(args.node):
                    # judged live already (we took it for that pod, or a read found it live):
                    # no API call until the watch shows it change
                    await self._until_changed(args.node, self._watched_holder, deadline)
                    if time.monotonic() >= deadline:
                        self._live.pop(args.node, None)  # judge it afresh: the holder may be gone
                    continue
                try:
                    taken = await nodelock.acquire(
                        self.client, args.node, args.namespace, args.name,
                        known=self.sync.node_copies.get(args.node),
                    )  # fmt: skip
                    if args.node in self.sync.node_copies:  # a watched node: else no event
                        self.sync.note_lock(args.node, taken.get("metadata") or {})  # mends it
                    self._live[args.node] = f"{args.namespace}/{args.name}"
                    return ""
                except nodelock.NodeLockContention as exc:
                    self._live[args.node] = exc.holder
                    if time.monotonic() >= deadline:
                        return str(exc)
                except ApiError as exc:
                    return f"could not take the lock of node {args.node}: {exc}"
                self.sync.locked.add(args.node)  # busy for the filter meanwhile
                # until the watch catches up with what the read saw
                await self._until_changed(args.node, self._watched_version, deadline)
        finally:
            gate.release()

    async def _until_changed(
        self, node: str, probe: Callable[[str], object], deadline: float
    ) -> None:
        """Wait until ``probe(node)`` answers differently, woken by each change to the node's
        watched copy (no polling: many binds wait at once in a burst), or the monotonic
        ``deadline``."""
        start = probe(node)
        while probe(node) == start:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await self.sync.node_changed(node, left)

    def _watched_holder(self, node: str) -> str | None:
        """Who holds the node's lock as the node watch last showed it (None: free)."""
        value, _ = nodelock.current_lock(self.sync.node_copies.get(node) or {})
        if not value:
            return None
        lock = nodelock.parse_lock(value)
        return lock.owner if lock is not None else value

    def _watched_version(self, node: str) -> str:
        return nodelock.current_lock(self.sync.node_copies.get(node) or {})[1]

    async def _mlu_lock(self, args: BindArgs) -> tuple[str | None, str]:
        """Take the node's Cambricon lock (`hami_common.protocol.mlulock`), waiting up to
        ``lock_wait_seconds`` for the plugin to remove a younger one (woken by the node watch).
        Returns the value written, or the error."""
        deadline = time.monotonic() + self.settings.lock_wait_seconds
        while True:
            try:
                return await mlulock.acquire(self.client, args.node), ""
            except mlulock.MluLockContention as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, str(exc)
                await self.sync.node_changed(args.node, min(left, 1.0))
            except ApiError as exc:
                return None, f"could not take the Cambricon lock of node {args.node}: {exc}"

    async def _release_mlu_lock(self, args: BindArgs, value: str) -> bool:
        try:
            await mlulock.release(self.client, args.node, value)
        except ApiError as exc:
            log.warning("could not release the Cambricon lock of %s: %s", args.node, exc)
            return False
        return True

    async def _release_lock(self, args: BindArgs) -> bool:
        try:
            await nodelock.release(self.client, args.node, args.namespace, args.name)
        except ApiError as exc:
            log.warning("could not release the lock of %s: %s", args.node, exc)
            return False
        return True

    # -- background --------------------------------------------------------------------------

    def release_expired(self, now: float | None = None) -> list[str]:
        """Releases the reservations this extender's filter made that no bind took within
        ``reservation_ttl_seconds``. An allocation that another scheduler (or an earlier
        leader) wrote on a pod not bound yet is the API's word, not ours to release: it stays
        counted until the pod is bound, changed or deleted."""
        now = time.time() if now is None else now
        ttl, released = self.settings.reservation_ttl_seconds, []
        for uid, mine in list(self.sync.pending.items()):
            if now - mine.at < ttl:
                continue
            held = self.cluster.pod(uid)
            if held is not None and held.reserved_at is not None:
                self.cluster.remove_pod(uid)
            del self.sync.pending[uid]
            released.append(uid)
        if released:
            self.metrics.released.inc(len(released))
            log.info("released %d reservations not bound in time", len(released))
        return released
