"""Which pod each node's device plugin is allocating, kept in memory (``--node-lock memory``).

kubelet's Allocate carries a device count, not the pod: the plugin finds the pod it is for as
the one bound to its node in ``bind-phase=allocating`` (HAMi's lookup without the lock). So at
most one pod per node may be in that phase at a time, or two pods could swap their devices. With
HAMi's node lock that is an annotation on the node, taken by a compare-and-swap at bind and
released by the plugin: two writes to the node per pod. When this extender is the only binder of
HAMi-protocol pods (it leads through its Lease), it keeps the same guarantee here instead: a bind
waits until no other pod of the node is allocating, holds the node from its Binding until the pod
watch shows the pod's phase leave ``allocating`` (``success``, ``failed``), and the map is rebuilt
from the pods' own annotations after a restart or a change of leader. The nodes held are mirrored
into the core, whose filter (with ``prefer_idle`` or a burst window) counts them as allocations
in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class Allocating:
    """The pods in ``bind-phase=allocating``, by node, from the pod watch and our own binds."""

    def __init__(self, on_busy: Callable[[str, bool], None] | None = None) -> None:
        """``on_busy(node, busy)`` is told when a node starts or stops holding a pod."""
        self._pods: dict[str, set[str]] = {}  # node -> uids allocating on it
        self._node_of: dict[str, str] = {}  # uid -> its node
        self._free: dict[str, asyncio.Event] = {}  # set (and dropped) when a node frees
        self._on_busy = on_busy

    def holders(self, node: str) -> set[str]:
        """The pods allocating on ``node`` (a copy)."""
        return set(self._pods.get(node, ()))

    def free_for(self, node: str, uid: str) -> bool:
        """Whether ``uid`` may be bound to ``node`` now: no other pod is allocating there."""
        return not (self._pods.get(node, set()) - {uid})

    def hold(self, node: str, uid: str) -> None:
        """``uid`` is allocating on ``node`` (our Binding, or the watch saw it)."""
        old = self._node_of.get(uid)
        if old == node:
            return
        if old is not None:
            self.release(uid)
        self._node_of[uid] = node
        pods = self._pods.setdefault(node, set())
        pods.add(uid)
        if len(pods) == 1 and self._on_busy is not None:
            self._on_busy(node, True)

    def release(self, uid: str) -> None:
        """``uid`` no longer allocates (its phase moved on, its Binding failed, it is gone)."""
        node = self._node_of.pop(uid, None)
        if node is None:
            return
        pods = self._pods.get(node, set())
        pods.discard(uid)
        if not pods:
            self._pods.pop(node, None)
            if self._on_busy is not None:
                self._on_busy(node, False)
        event = self._free.pop(node, None)
        if event is not None:
            event.set()

    def observe(self, uid: str, node: str | None, allocating: bool) -> None:
        """What the pod watch shows of a pod: bound to ``node``, and whether its phase is
        ``allocating``."""
        if allocating and node:
            self.hold(node, uid)
        else:
            self.release(uid)

    def forget_all_but(self, uids: set[str]) -> None:
        """After a whole list: pods not in it are gone."""
        for uid in set(self._node_of) - uids:
            self.release(uid)

    async def wait_free(self, node: str, uid: str, within: float) -> bool:
        """Waits (up to ``within`` s) until ``uid`` may be bound to ``node``; whether it may."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self.free_for(node, uid):
            left = deadline - loop.time()
            if left <= 0:
                return False
            event = self._free.setdefault(node, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await event.wait()
        return True
