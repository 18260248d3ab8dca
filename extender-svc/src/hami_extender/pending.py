"""The pods of our scheduler that no node has taken yet (``spec.schedulerName=<ours>``, no
``spec.nodeName``), from a metadata-only list-then-watch: what "pending" means for the web UI,
``kubectl hami`` and ``hami_extender_pending_pods``. The reasons come from the explanations the
filter records; a pod deleted while pending leaves this set at once (a reason kept in memory
alone could not tell)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from hami_common.k8s import LOOP_BACKOFF, PODS, Backoff, KubeClient, follow

log = logging.getLogger(__name__)
Json = dict[str, Any]


@dataclass(frozen=True)
class PendingPod:
    uid: str
    namespace: str
    name: str
    created: str  # RFC 3339, as the API gives it


def _pending(obj: Json) -> PendingPod | None:
    meta = obj.get("metadata") or {}
    uid, name = meta.get("uid"), meta.get("name")
    if not isinstance(uid, str) or not isinstance(name, str) or meta.get("deletionTimestamp"):
        return None
    return PendingPod(uid, str(meta.get("namespace", "")), name,
                      str(meta.get("creationTimestamp", "")))  # fmt: skip


class PendingPods:
    def __init__(
        self, client: KubeClient, scheduler_name: str, backoff: Backoff = LOOP_BACKOFF
    ) -> None:
        self.client, self.scheduler_name, self.backoff = client, scheduler_name, backoff
        self.pods: dict[str, PendingPod] = {}
        """UID -> pod; replaced whole on each change (readers in other threads see one
        version or the next)."""
        self.synced = asyncio.Event()
        # pending pods the filter has answered (placed: their reservation holds room already;
        # or fit nowhere: they wait for room), and answers to pods the watch has not shown yet
        self._answered: set[str] = set()
        self._early: set[str] = set()

    def answered(self, uid: str) -> None:
        """Records that the filter answered this pod: it is no longer part of the burst to
        come, whether it was placed or fits nowhere."""
        if uid in self.pods:
            self._answered.add(uid)
            return
        if len(self._early) > 4096:  # answers to pods the watch never showed pending
            self._early.clear()
        self._early.add(uid)

    def backlog(self, uid: str) -> int:
        """The pods still to be placed besides ``uid``: pending and not yet answered by the
        filter (the burst a binpack filter spreads over the nodes it fills next)."""
        pods, answered = self.pods, self._answered
        return max(0, len(pods) - len(answered) - (uid in pods and uid not in answered))

    def apply(self, kind: str, obj: Json) -> None:
        if kind == "SYNC":
            fresh = (_pending(p) for p in obj.get("items") or [])
            self.pods = {p.uid: p for p in fresh if p is not None}
            self._answered = {u for u in self._answered | self._early if u in self.pods}
            self._early.clear()
            self.synced.set()
            return
        pod = _pending(obj)
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        if kind in ("ADDED", "MODIFIED") and pod is not None:
            self.pods = {**self.pods, uid: pod}
            if uid in self._early:
                self._early.discard(uid)
                self._answered.add(uid)
            return
        self._answered.discard(uid)
        self._early.discard(uid)
        if uid in self.pods:  # deleted, being deleted, or no longer pending
            self.pods = {k: v for k, v in self.pods.items() if k != uid}

    async def run(self) -> None:
        """Forever: list then watch; a failure waits (growing to a cap) and lists again."""
        selector = f"spec.schedulerName={self.scheduler_name},spec.nodeName="
        await follow(self.client, PODS, self.apply, what="pending pod watch", log=log,
                     backoff=self.backoff, field_selector=selector, metadata_only=True)  # fmt: skip
