"""Leader election on a ``coordination.k8s.io/v1`` Lease, the way client-go does it.

Every change is a compare-and-swap (``replace`` with the Lease's resourceVersion), so two
replicas can never both win. A Lease held by someone else is taken over only after this replica
has watched it stay unrenewed (same resourceVersion) for ``leaseDurationSeconds``, measured on
this replica's own clock, so clock skew between replicas does not matter. The leader renews every
third of the duration and steps down when it has not renewed for two thirds of it (before anyone
may take over). A leader that stops cleanly releases the Lease, so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from hami_common.k8s import (
    LEASES,
    AlreadyExists,
    ApiError,
    Backoff,
    Conflict,
    KubeClient,
    NotFound,
    Retrier,
)

log = logging.getLogger(__name__)
Json = dict[str, Any]


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """``is_leader`` is True while this replica holds a Lease it renewed recently enough."""

    def __init__(
        self,
        client: KubeClient,
        name: str,
        namespace: str,
        identity: str,
        duration: float,
    ) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.duration = duration
        self._renewed_at: float | None = None  # monotonic time of our last successful renew
        self._observed: tuple[str, float] | None = None  # (resourceVersion, when first seen)
        self.changed = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return (
            self._renewed_at is not None
            and time.monotonic() - self._renewed_at < self.duration * 2 / 3
        )

    def _spec(self, transitions: int, acquire: bool, old: Json | None = None) -> Json:
        spec: Json = dict(old or {})
        now = _now_micro()
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, round(self.duration)),
            renewTime=now,
            leaseTransitions=transitions,
        )
        if acquire:
            spec["acquireTime"] = now
        return spec

    def _set_leader(self, leading: bool) -> None:
        was = self.is_leader
        self._renewed_at = time.monotonic() if leading else None
        if was != leading:
            log.info("%s %s the lease %s/%s", self.identity,
                     "holds" if leading else "lost", self.namespace, self.name)  # fmt: skip
            self.changed.set()

    async def try_acquire_or_renew(self) -> bool:
        """One round; returns whether this replica leads afterwards."""
        try:
            lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
        except NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(0, acquire=True),
            }
            try:
                await self.client.create(LEASES, body, namespace=self.namespace)
            except AlreadyExists:
                return False
            self._set_leader(True)
            return True
        spec = lease.get("spec") or {}
        rv = str(lease["metadata"].get("resourceVersion"))
        holder = spec.get("holderIdentity") or ""
        transitions = int(spec.get("leaseTransitions") or 0)
        mine = holder == self.identity
        if not mine and holder:
            now = time.monotonic()
            if self._observed is None or self._observed[0] != rv:
                self._observed = (rv, now)
            duration = float(spec.get("leaseDurationSeconds") or self.duration)
            if now - self._observed[1] < duration:
                self._set_leader(False)
                return False
        lease["spec"] = self._spec(transitions if mine else transitions + 1, not mine, spec)
        try:
            await self.client.replace(LEASES, lease, namespace=self.namespace)
        except Conflict:
            return self.is_leader and mine
        self._set_leader(True)
        return True

    async def release(self) -> None:
        """Give the Lease up (clean shutdown), so a standby need not wait for it to expire."""
        if not self.is_leader:
            return
        self._set_leader(False)
        try:
            lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.client.replace(LEASES, lease, namespace=self.namespace)
        except ApiError as exc:
            log.warning("could not release the lease: %s", exc)

    async def run(self) -> None:
        """Campaign and renew forever; API errors count as a failed round, logged in one line,
        and the next round comes after a backoff that grows to the usual period."""
        retry = Retrier("lease round", log, Backoff(base=0.5, cap=self.duration / 4))
        while True:
            period = self.duration / 3 if self.is_leader else self.duration / 4
            try:
                await self.try_acquire_or_renew()
            except ApiError as exc:
                if not self.is_leader:
                    self._set_leader(False)
                period = min(period, retry.failed(exc))
            else:
                retry.succeeded()
            await asyncio.sleep(period)
