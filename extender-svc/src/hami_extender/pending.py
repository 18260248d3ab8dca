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

    def apply(self, kind: str, obj: Json) -> None:
        if kind == "SYNC":
            fresh = (_pending(p) for p in obj.get("items") or [])
            self.pods = {p.uid: p for p in fresh if p is not None}
            self.synced.set()
            return
        pod = _pending(obj)
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        if kind in ("ADDED", "MODIFIED") and pod is not None:
            self.pods = {**self.pods, uid: pod}
        elif uid in self.pods:  # deleted, being deleted, or no longer pending
            self.pods = {k: v for k, v in self.pods.items() if k != uid}

    async def run(self) -> None:
        """Forever: list then watch; a failure waits (growing to a cap) and lists again."""
        selector = f"spec.schedulerName={self.scheduler_name},spec.nodeName="
        await follow(self.client, PODS, self.apply, what="pending pod watch", log=log,
                     backoff=self.backoff, field_selector=selector, metadata_only=True)  # fmt: skip
