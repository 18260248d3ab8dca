"""Namespace quota on device memory and cores (HAMi's ``fitResourceQuota``, reference §4.9).

A ``ResourceQuota`` whose ``spec.hard`` has ``limits.<memory name>`` or ``limits.<core name>``
(e.g. ``limits.nvidia.com/gpumem: "16000"``) caps the sum over the namespace's pods. A pod asks
``max(sum over app containers, max over init containers)`` of ``memory x count`` (and of
``cores x count``); a memory given only as a percentage counts 0 here, as in HAMi (the extender
checks the resolved amount at fit time). Memory is compared in request units, i.e. multiplied by
the vendor's memory factor, so the limit is multiplied by it too.

`QuotaSource` hides where limits and usage come from: `InMemoryQuotaSource` for tests,
`KubeQuotaSource` reads ResourceQuotas and sums the namespace's live pods through the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hami_common.k8s import PODS, RESOURCE_QUOTAS, KubeClient

from hami_webhook.pod_shape import containers, pod_shape_problems
from hami_webhook.quantity import QuantityError, quantity_value
from hami_webhook.rules import AdmissionRules

QUOTA_PREFIX = "limits."


@dataclass(frozen=True)
class QuotaState:
    """`limit` as written in the ResourceQuota; `used` in request units (factor applied)."""

    limit: int
    used: int


class QuotaSource(Protocol):
    async def quota(self, namespace: str, resources: Sequence[str]) -> dict[str, QuotaState]:
        """The states of those resources that have a limit in `namespace` (others omitted)."""
        ...


def quota_resources(rules: Iterable[AdmissionRules]) -> list[str]:
    """Every resource name that quota tracks: each vendor's memory and core names."""
    names: list[str] = []
    for r in rules:
        names += [n for n in (r.resources.memory, r.resources.cores) if n]
    return names


def pod_quota_request(pod: dict[str, Any], rules: Iterable[AdmissionRules]) -> dict[str, int]:
    """What a shape-checked pod counts against quota, per resource name (zeros omitted)."""
    totals: dict[str, int] = {}
    for r in rules:
        app = {"memory": 0, "cores": 0}  # summed: app containers run together
        init = {"memory": 0, "cores": 0}  # peak: init containers run one at a time
        for kind in ("initContainers", "containers"):
            for container in containers(pod, kind):
                request = r.device_request(container)
                if request is None:
                    continue
                mem, cores = request.memory * request.count, request.cores * request.count
                if kind == "containers":
                    app["memory"] += mem
                    app["cores"] += cores
                else:
                    init["memory"] = max(init["memory"], mem)
                    init["cores"] = max(init["cores"], cores)
        for key, name in (("memory", r.resources.memory), ("cores", r.resources.cores)):
            amount = max(app[key], init[key])
            if name and amount:
                totals[name] = totals.get(name, 0) + amount
    return totals


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

    def __init__(self, client: KubeClient, rules: Sequence[AdmissionRules]) -> None:
        self.client = client
        self.rules = rules

    async def quota(self, namespace: str, resources: Sequence[str]) -> dict[str, QuotaState]:
        quotas = await self.client.list(RESOURCE_QUOTAS, namespace=namespace)
        limits: dict[str, int] = {}
        for item in quotas.get("items") or []:
            hard = (item.get("spec") or {}).get("hard") or {}
            for name in resources:
                raw = hard.get(QUOTA_PREFIX + name)
                if raw is None:
                    continue
                try:
                    value = quantity_value(raw)
                except QuantityError:
                    continue
                limits[name] = min(value, limits.get(name, value))
        if not limits:
            return {}
        pods = await self.client.list(PODS, namespace=namespace)
        used: dict[str, int] = dict.fromkeys(limits, 0)
        for pod in pods.get("items") or []:
            if _live(pod):
                for name, amount in pod_quota_request(pod, self.rules).items():
                    if name in used:
                        used[name] += amount
        return {name: QuotaState(limit, used[name]) for name, limit in limits.items()}
