"""Namespace quota on device memory and cores (HAMi's ``fitResourceQuota``, reference §4.9).

A ``ResourceQuota`` whose ``spec.hard`` has ``limits.<memory name>`` or ``limits.<core name>``
(e.g. ``limits.nvidia.com/gpumem: "16000"``) caps the sum over the namespace's pods. What a pod
counts comes from the Rust core (`hami_rustcore.RequestModel.quota_request`, and ``quota`` of
its admission): ``max(sum over app containers, max over init containers)`` of ``memory x count``
and of ``cores x count``; a memory given only as a percentage counts 0, as in HAMi. Memory is
compared in MiB, i.e. multiplied by the vendor's memory factor, so the limit is multiplied by
it too.

`QuotaSource` hides where limits and usage come from: `InMemoryQuotaSource` for tests,
`KubeQuotaSource` reads ResourceQuotas and sums the namespace's live pods through the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hami_common.k8s import PODS, RESOURCE_QUOTAS, KubeClient
from hami_rustcore import CoreError, quantity_value

from hami_webhook.devices import DeviceModel
from hami_webhook.pod_shape import pod_shape_problems

QUOTA_PREFIX = "limits."


@dataclass(frozen=True)
class QuotaState:
    """`limit` as written in the ResourceQuota; `used` in MiB and cores (factor applied)."""

    limit: int
    used: int


class QuotaSource(Protocol):
    async def quota(self, namespace: str, resources: Sequence[str]) -> dict[str, QuotaState]:
        """The states of those resources that have a limit in `namespace` (others omitted)."""
        ...


class InMemoryQuotaSource:
    """Limits and usage held in dicts: ``{namespace: {resource: QuotaState}}``."""

    def __init__(self, states: Mapping[str, Mapping[str, QuotaState]] | None = None) -> None:
        self.states = {ns: dict(v) for ns, v in (states or {}).items()}

    async def quota(self, namespace: str, resources: Sequence[str]) -> dict[str, QuotaState]:
        found = self.states.get(namespace, {})
        return {name: found[name] for name in resources if name in found}


def _live(pod: Any) -> bool:
    if not isinstance(pod, dict) or pod_shape_problems(pod):
        return False
    metadata = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase")
    return not metadata.get("deletionTimestamp") and phase not in ("Succeeded", "Failed")


class KubeQuotaSource:
    """Limits from the namespace's ResourceQuotas (the tightest wins); usage summed over its
    live pods (not terminated, not being deleted). Needs RBAC list on pods and resourcequotas."""

    def __init__(self, client: KubeClient, model: DeviceModel) -> None:
        self.client = client
        self.model = model

    async def quota(self, namespace: str, resources: Sequence[str]) -> dict[str, QuotaState]:
        quotas = await self.client.list(RESOURCE_QUOTAS, namespace=namespace)
        limits: dict[str, int] = {}
        for item in quotas.get("items") or []:
            hard = (item.get("spec") or {}).get("hard") or {}
            for name in resources:
                raw = hard.get(QUOTA_PREFIX + name)
                if not isinstance(raw, str):
                    continue
                try:
                    value = quantity_value(raw)
                except CoreError:
                    continue  # not a whole number: the API server keeps no such limit
                limits[name] = min(value, limits.get(name, value))
        if not limits:
            return {}
        pods = await self.client.list(PODS, namespace=namespace)
        used: dict[str, int] = dict.fromkeys(limits, 0)
        for pod in pods.get("items") or []:
            if not _live(pod):
                continue
            try:
                amounts = self.model.requests.quota_request(json.dumps(pod))
            except CoreError:
                continue  # the extender cannot place it either
            for name, amount in amounts.items():
                if name in used:
                    used[name] += amount
        return {name: QuotaState(limit, used[name]) for name, limit in limits.items()}
