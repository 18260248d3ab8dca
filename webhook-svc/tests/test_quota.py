"""Quota sources: the in-memory one, and the API-backed one over ResourceQuotas and live pods."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from hami_common.k8s import PODS, RESOURCE_QUOTAS, KubeClient, Resource
from hami_common.settings import DeviceConfig
from hami_webhook.devices import DeviceModel
from hami_webhook.quota import InMemoryQuotaSource, KubeQuotaSource, QuotaState
from hami_webhook.testing import container, pod

MODEL = DeviceModel.from_config(DeviceConfig())
NAMES = ["nvidia.com/gpumem", "nvidia.com/gpucores"]


class FakeKube:
    """Answers list() from canned objects, recording the calls."""

    def __init__(self, quotas: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        self.objects = {RESOURCE_QUOTAS: quotas, PODS: pods}
        self.calls: list[tuple[str, str | None]] = []

    async def list(self, resource: Resource, *, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append((resource.plural, namespace))
        return {"items": self.objects[resource]}


def _quota(hard: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "q"}, "spec": {"hard": hard}}


def _gpu_pod(mem: str, count: str = "1", **extra: Any) -> dict[str, Any]:
    p = pod(container(limits={"nvidia.com/gpu": count, "nvidia.com/gpumem": mem}))
    p.update(extra)
    return p


def _source(
    quotas: list[dict[str, Any]], pods: list[dict[str, Any]]
) -> tuple[KubeQuotaSource, FakeKube]:
    fake = FakeKube(quotas, pods)
    return KubeQuotaSource(cast(KubeClient, fake), MODEL), fake


def test_kube_source_takes_the_tightest_limit_and_sums_live_pods() -> None:
    source, fake = _source(
        [
            _quota({"limits.nvidia.com/gpumem": "10000", "requests.cpu": "4"}),
            _quota({"limits.nvidia.com/gpumem": "8000"}),
        ],
        [
            _gpu_pod("1000"),
            _gpu_pod("2000", count="2"),
            _gpu_pod("7000", status={"phase": "Succeeded"}),
            _gpu_pod("7000", metadata={"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"}),
            {"spec": "garbage"},
            _gpu_pod("4Gi"),  # the core refuses it: nothing can be placed, nothing counts
        ],
    )
    got = asyncio.run(source.quota("ns", NAMES))
    assert got == {"nvidia.com/gpumem": QuotaState(limit=8000, used=5000)}
    assert fake.calls == [("resourcequotas", "ns"), ("pods", "ns")]


def test_kube_source_without_device_quota_does_not_list_pods() -> None:
    hard = {
        "requests.cpu": "4",
        "limits.nvidia.com/gpumem": "lots",
        "limits.nvidia.com/gpucores": "0.5",
    }
    source, fake = _source([_quota(hard)], [])
    assert asyncio.run(source.quota("ns", NAMES)) == {}
    assert fake.calls == [("resourcequotas", "ns")]


def test_in_memory_source_returns_only_asked_resources() -> None:
    source = InMemoryQuotaSource(
        {"ns": {"nvidia.com/gpumem": QuotaState(1, 0), "x": QuotaState(1, 0)}}
    )
    assert asyncio.run(source.quota("ns", NAMES)) == {"nvidia.com/gpumem": QuotaState(1, 0)}
    assert asyncio.run(source.quota("other", NAMES)) == {}
