"""Keeps the core's state equal to the API: nodes' registrations and pods' allocations.

Two list-then-watch loops (restart on 410, resume from the last resourceVersion):

- nodes (their register annotations, and the capacity Cambricon's inventory is read from as
  HAMi reads it; metadata only when no vendor needs capacity): a node's healthy devices
  replace its inventory; a node whose devices vanish, or that is deleted, leaves the state;
- pods labelled ``hami.io/vgpu-node`` (only pods placed by an extender), full JSON since the phase
  and the init containers' status matter: finished and deleted pods release their devices.

A ``SYNC`` replaces the state: objects absent from the list are removed. Reservations made in
memory and not yet written (`Reservations`) are never overwritten by an older copy from a
watch, so a delayed event cannot free devices that a newer filter just took.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hami_rustcore as core
import orjson
from hami_common.k8s import (
    LOOP_BACKOFF,
    NODES,
    PODS,
    Backoff,
    Gone,
    KubeClient,
    Retrier,
    ServerError,
    TransportError,
    WatchEvent,
    list_then_watch,
    watch,
)
from hami_common.protocol.annotations import MIG_ALLOCATIONS, NODE_LOCK, VGPU_NODE

from hami_extender.allocating import Allocating
from hami_extender.inventory import (
    ObjectError,
    PodPlacement,
    being_allocated,
    is_finished,
    member,
    needs_status,
    node_inventory,
    pod_placement,
    upsert,
)

log = logging.getLogger(__name__)
Json = dict[str, Any]


@dataclass
class Pending:
    """A reservation held in memory only (``persist_reservation=bind``) until bind writes it."""

    node: str
    annotations: dict[str, str]
    allocated: dict[str, str]  # vendor allocated key -> encoded value we reserved
    parent: Any = None  # the pod's trace context, for the bind span
    at: float = field(default_factory=time.time)


class BusyNodes:
    """Names of the nodes with an allocation in flight, mirrored into the core, whose filter
    (with ``prefer_idle`` or a burst window) counts such a node as busy. A node is busy while
    any reason holds: its annotation lock is held (``lock``), or a pod on it is being allocated
    (``allocating``, with ``--node-lock memory``)."""

    def __init__(self, cluster: core.Cluster) -> None:
        self._cluster = cluster
        self._reasons: dict[str, set[str]] = {}

    def add(self, name: str, reason: str = "lock") -> None:
        reasons = self._reasons.setdefault(name, set())
        if not reasons:
            self._cluster.set_node_busy(name, True)
        reasons.add(reason)

    def discard(self, name: str, reason: str = "lock") -> None:
        reasons = self._reasons.get(name)
        if reasons is None or reason not in reasons:
            return
        reasons.discard(reason)
        if not reasons:
            del self._reasons[name]
            self._cluster.set_node_busy(name, False)

    def set(self, name: str, busy: bool, reason: str) -> None:
        (self.add if busy else self.discard)(name, reason)

    def __iter__(self) -> Iterator[str]:
        return iter(self._reasons)


class StateSync:
    """The two watch loops, and the bookkeeping that lets filter and watch agree."""

    def __init__(
        self, client: KubeClient, cluster: core.Cluster, node_selector: str = "",
        page_size: int = 500, retry_backoff: Backoff = LOOP_BACKOFF,
    ) -> None:  # fmt: skip
        """``retry_backoff``: the waits of a watch loop that keeps failing (grows to a cap)."""
        self.client = client
        self.retry_backoff = retry_backoff
        self.lists = {"node": 0, "pod": 0}  # lists loaded by each loop (the API worked)
        self.page_size = page_size
        self.cluster = cluster
        self.node_selector = node_selector or None
        self.specs = cluster.vendor_specs()
        self.pending: dict[str, Pending] = {}
        self.node_prints: dict[str, tuple[str, ...]] = {}
        # nodes whose allocation lock is held (from the node watch, and set by our own bind at
        # once): filter prefers other nodes while one fits, so binds do not queue on one lock
        self.locked = BusyNodes(cluster)
        # the pods in bind-phase=allocating by node (--node-lock memory waits on it)
        self.allocating = Allocating(lambda node, busy: self.locked.set(node, busy, "allocating"))
        # per node, its resourceVersion and lock as the watch last showed them: bind's first
        # compare-and-swap of the lock starts from this instead of a GET
        self.node_copies: dict[str, Json] = {}
        self._node_changed: dict[str, asyncio.Event] = {}  # set (and dropped) when a copy changes
        self.pods: dict[str, str] = {}  # uid -> ns/name of pods in the state from the API
        self.nodes_synced = asyncio.Event()
        self.pods_synced = asyncio.Event()
        self.decode_errors = 0
        self.on_change: Callable[[], None] | None = None

    @property
    def synced(self) -> bool:
        return self.nodes_synced.is_set() and self.pods_synced.is_set()

    async def wait_synced(self, within: float) -> bool:
        if self.synced:
            return True
        try:
            async with asyncio.timeout(within):
                await self.nodes_synced.wait()
                await self.pods_synced.wait()
        except TimeoutError:
            return False
        return True

    # -- nodes -------------------------------------------------------------------------------

    def apply_node(self, node: Json) -> None:
        meta = member(node, "metadata")
        name = meta.get("name")
        if not isinstance(name, str):
            return
        lock = self.note_lock(name, meta)
        try:
            inv = node_inventory(node, self.specs)
        except ObjectError as exc:
            self.decode_errors += 1
            log.warning("%s; keeping the node's previous inventory", exc)
            return
        if self.node_prints.get(name) != inv.fingerprint:
            self.node_prints[name] = inv.fingerprint
            if inv.devices:
                self.cluster.set_node(name, inv.devices, inv.pair_scores, inv.cordoned)
            else:
                self.cluster.remove_node(name)
        if lock:  # after set_node: the core knows the node
            self.locked.add(name)
        else:
            self.locked.discard(name)

    def note_lock(self, name: str, meta: Json) -> str | None:
        """Keeps what the node lock needs of a node's metadata (its resourceVersion and lock) as
        the copy `nodelock.acquire` starts from; returns the lock. From the watch, and from the
        API server's answer to our own compare-and-swap, so the next bind queued on the node
        sees the lock it took before the watch delivers it (else it would try the lock from
        the copy before, get a Conflict, and read the node and the holder). An older answer
        landing after a newer event only costs that Conflict: the watch's next event mends it."""
        ann = meta.get("annotations")
        lock = ann.get(NODE_LOCK) if isinstance(ann, dict) else None
        self.node_copies[name] = {"metadata": {
            "name": name, "resourceVersion": meta.get("resourceVersion"),
            "annotations": {NODE_LOCK: lock} if lock else {},
        }}  # fmt: skip
        self._wake(name)
        return lock if isinstance(lock, str) else None

    async def node_changed(self, name: str, within: float) -> None:
        """Returns when the node's copy next changes (or vanishes), or after ``within`` s."""
        event = self._node_changed.setdefault(name, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await event.wait()

    def _wake(self, name: str) -> None:
        event = self._node_changed.pop(name, None)
        if event is not None:
            event.set()

    def remove_node(self, name: str) -> None:
        self.node_prints.pop(name, None)
        self.node_copies.pop(name, None)
        self._wake(name)
        self.locked.discard(name)
        self.cluster.remove_node(name)

    def handle_node_event(self, event: WatchEvent) -> None:
        if event.type == "SYNC":
            items = event.object.get("items") or []
            names = {member(n, "metadata").get("name") for n in items}
            for gone in set(self.node_prints) - names:
                self.remove_node(gone)
            for node in items:
                self.apply_node(node)
            self.nodes_synced.set()
        elif event.type == "DELETED":
            self.remove_node(str(member(event.object, "metadata").get("name")))
        else:
            self.apply_node(event.object)

    # -- pods --------------------------------------------------------------------------------

    def _forget(self, uid: str) -> None:
        self.pods.pop(uid, None)
        self.pending.pop(uid, None)
        self.allocating.release(uid)
        self.cluster.remove_pod(uid)

    def _newer_in_memory(self, placement: PodPlacement) -> bool:
        """A reservation we made and have not written yet wins over what the API says, unless
        the API already shows exactly it (then the write landed) or shows the pod bound: a
        bound pod's annotations are what it runs with (the Binding carried them), so any
        reservation still in memory for it is stale, and is dropped."""
        mine = self.pending.get(placement.uid)
        if mine is None:
            return False
        if placement.bound:
            self.pending.pop(placement.uid, None)
            return False
        return mine.node != placement.node or mine.allocated != placement.allocated

    def apply_pod(self, pod: Json, now: float | None = None) -> None:
        meta = member(pod, "metadata")
        uid = meta.get("uid")
        if not isinstance(uid, str):
            return
        if is_finished(pod):
            self._forget(uid)
            return
        self.allocating.observe(uid, *being_allocated(pod))
        try:
            placement = pod_placement(pod, self.specs)
        except ObjectError as exc:
            self.decode_errors += 1
            log.warning("%s; the pod's devices are not counted until it is fixed", exc)
            return
        if placement is None:
            if uid in self.pods and uid not in self.pending:
                self._forget(uid)
            return
        if self._newer_in_memory(placement):
            return
        self.pods[uid] = f"{placement.namespace}/{placement.name}"
        try:
            upsert(self.cluster, placement, now)
        except core.CoreError as exc:  # its MIG reservation does not decode
            self.decode_errors += 1
            log.warning(
                "pod %s/%s: annotation %s: %s; the pod's devices are not counted until it is "
                "fixed", placement.namespace, placement.name, MIG_ALLOCATIONS, exc,
            )  # fmt: skip
            self._forget(uid)

    def handle_pod_event(self, event: WatchEvent) -> None:
        if event.type == "SYNC":  # a whole list, decoded: through the page path all the same
            items = event.object.get("items")
            batch = PodBatch(self)
            batch.add_page(orjson.dumps({"items": items if isinstance(items, list) else []}))
            batch.commit()
        elif event.type == "DELETED":
            uid = member(event.object, "metadata").get("uid")
            if isinstance(uid, str):
                self._forget(uid)
        else:
            self.apply_pod(event.object)
        if self.on_change is not None:
            self.on_change()

    # -- loops -------------------------------------------------------------------------------

    async def run_nodes(self) -> None:
        """Metadata only (the register annotations are all most vendors need), unless a
        vendor's inventory is read from node capacity (Cambricon's, as HAMi reads it)."""
        async for event in list_then_watch(
            self.client, NODES, label_selector=self.node_selector,
            metadata_only=not needs_status(self.specs),
        ):  # fmt: skip
            self.handle_node_event(event)
            if event.type == "SYNC":
                self.lists["node"] += 1

    async def load_pods(self) -> str:
        """List the placed pods page by page into one `PodBatch` (each page goes from the
        response bytes into the core, so 100,000 pods never sit in memory as JSON, nor as
        Python objects); returns the resourceVersion to watch from. A continue token that
        expires mid-way starts the list over."""
        params: dict[str, str | int] = {"labelSelector": VGPU_NODE, "limit": self.page_size}
        with _no_gc():
            return await self._load_pods(params)

    async def _load_pods(self, params: dict[str, str | int]) -> str:
        while True:
            batch, token, version = PodBatch(self), None, ""
            try:
                while True:
                    page = await self._get_page({**params, "continue": token} if token else params)
                    token, page_version = batch.add_page(page)
                    version = version or page_version
                    if not token:
                        break
            except Gone:
                continue
            batch.commit()
            if self.on_change is not None:
                self.on_change()
            return version

    async def _get_page(self, params: dict[str, str | int]) -> bytes:
        """One list page, as the API sent it: a page of 500 real pods is ~2 MB of JSON, which
        the core reads in place (`PodBatch.add_page`); reading the body whole is about twice as
        fast as streaming it line by line."""
        return await self.client.request_bytes("GET", PODS.path(None), params=params)

    async def run_pods(self) -> None:
        """List then watch (as `hami_common.k8s.list_then_watch`, with a paged list that goes
        straight into the core): relist on 410, reconnect with backoff on transport errors."""
        version: str | None = None
        failures = 0
        while True:
            if version is None:
                version = await self.load_pods()
                self.lists["pod"] += 1
            try:
                async for event in watch(
                    self.client, PODS, resource_version=version, label_selector=VGPU_NODE
                ):
                    failures = 0
                    version = event.resource_version or version
                    if event.type != "BOOKMARK":
                        self.handle_pod_event(event)
            except Gone:
                version = None
            except (TransportError, ServerError) as exc:
                failures += 1
                if failures > self.client.backoff.retries:
                    raise
                delay = self.client.backoff.delay(failures - 1, exc.retry_after)
                log.info("pod watch broke: %s; reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def run(self) -> None:
        """Both loops; a loop that fails (API unreachable past its retries, or refusing us)
        starts over after a wait that grows while it keeps failing, with one log line per
        failure. A loop that loaded its list before failing starts a new streak."""

        async def forever(name: str, loop: Callable[[], Any]) -> None:
            retry = Retrier(f"{name} watch", log, self.retry_backoff)
            while True:
                listed = self.lists[name]
                try:
                    await loop()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self.lists[name] != listed:
                        retry.succeeded()
                    await asyncio.sleep(retry.failed(exc))

        async with asyncio.TaskGroup() as group:
            group.create_task(forever("node", self.run_nodes))
            group.create_task(forever("pod", self.run_pods))


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic GC while a list is decoded: the pages are freed by reference counting (no
    cycles), and each collection would walk every object decoded so far (about a quarter of the
    load time). Afterwards the long-lived objects are frozen out of later collections, which
    keeps full collections (and so /filter's tail latency) short."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        gc.freeze()


class PodBatch:
    """One full list of placed pods, applied as a ``SYNC``: each page goes into the core as the
    API sent it (`core.load_pod_page`: its common placed pods decoded there, without a Python
    object each); the uncommon ones (init containers, several vendors, unbound, reserved in
    memory) wait for `commit` and the per-pod path. At `commit`, pods absent from the list
    leave the state (unless reserved in memory) and finished ones release their devices. Only
    what `commit` needs is kept between pages."""

    def __init__(self, sync: StateSync) -> None:
        self.sync = sync
        self.listed: set[str] = set()
        self.finished: list[str] = []
        self.slow: list[Json] = []

    def add_page(self, page: bytes) -> tuple[str | None, str]:
        """One page of the list: its common placed pods are in the state on return. Returns
        the continue token and the list's resourceVersion; a page that is not a pod list raises
        `ServerError`, and nothing of it is applied."""
        sync = self.sync
        try:
            got = core.load_pod_page(sync.cluster, page, sync.pending)
        except core.DecodeError as exc:
            raise ServerError(f"GET pods: {exc}", reason="InvalidResponse") from None
        sync.pods.update(got.loaded)
        self.listed.update(uid for uid, _ in got.loaded)
        self.listed.update(got.finished)
        self.finished.extend(got.finished)
        for uid, ns, name, error in got.invalid:
            self.listed.add(uid)
            _bad_allocation(sync, ns, name, error)
        for text in got.others:  # each has a uid (the core skips pods without one)
            pod = _pod_json(sync, text)
            if pod is not None:
                self.listed.add(str(member(pod, "metadata").get("uid")))
                self.slow.append(pod)
        return got.continue_token, got.resource_version

    def commit(self) -> None:
        sync = self.sync
        for gone in set(sync.pods) - self.listed:
            if gone not in sync.pending:
                sync._forget(gone)
        for uid in self.finished:
            sync._forget(uid)
        now = time.time()
        for pod in self.slow:  # a pod being allocated is among them (the core routes it here)
            sync.apply_pod(pod, now)
        slow = {str(member(p, "metadata").get("uid")) for p in self.slow}
        for uid in self.listed - slow:  # listed, and not being allocated
            sync.allocating.release(uid)
        sync.pods_synced.set()


def _bad_allocation(sync: StateSync, ns: str, name: str, error: str) -> None:
    sync.decode_errors += 1
    log.warning("pod %s/%s: bad device annotation (%s); its devices are not counted "
                "until it is fixed", ns, name, error)  # fmt: skip


def _pod_json(sync: StateSync, text: bytes) -> Json | None:
    """A pod the core left to the per-pod path; it is valid JSON (the core parsed it), yet a
    pod orjson refuses is skipped with a warning rather than failing its page."""
    try:
        pod: Json = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        sync.decode_errors += 1
        log.warning("a pod in the list is not JSON orjson reads (%s); skipped", exc)
        return None
    return pod
