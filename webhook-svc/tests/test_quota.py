"""Quota sources: the in-memory one, and the API-backed one over ResourceQuotas and live pods."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from hami_common.k8s import PODS, RESOURCE_QUOTAS, KubeClient, Resource
from hami_common.settings import NvidiaConfig
from hami_webhook.quota import (
    InMemoryQuotaSource,
    KubeQuotaSource,
    QuotaState,
    pod_quota_request,
    quota_resources,
)
from hami_webhook.rules import NvidiaRules
from hami_webhook.testing import container, pod

RULES = [NvidiaRules(NvidiaConfig())]
NAMES = quota_resources(RULES)


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
    return KubeQuotaSource(cast(KubeClient, fake), RULES), fake


def test_quota_resources_are_memory_and_core_names() -> None:
    assert NAMES == ["nvidia.com/gpumem", "nvidia.com/gpucores"]


def test_pod_request_sums_app_and_takes_the_init_peak() -> None:
    p = pod(
        container(
            "a",
            limits={
                "nvidia.com/gpu": "2",
                "nvidia.com/gpumem": "1000",
                "nvidia.com/gpucores": "10",
            },
        ),
        container("b", limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "500"}),
        init=[container("i", limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4000"})],
    )
    assert pod_quota_request(p, RULES) == {"nvidia.com/gpumem": 4000, "nvidia.com/gpucores": 20}


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
        ],
    )
    got = asyncio.run(source.quota("ns", NAMES))
    assert got == {"nvidia.com/gpumem": QuotaState(limit=8000, used=5000)}
    assert fake.calls == [("resourcequotas", "ns"), ("pods", "ns")]


def test_kube_source_without_device_quota_does_not_list_pods() -> None:
    source, fake = _source([_quota({"requests.cpu": "4", "limits.nvidia.com/gpumem": "lots"})], [])
    assert asyncio.run(source.quota("ns", NAMES)) == {}
    assert fake.calls == [("resourcequotas", "ns")]


def test_in_memory_source_returns_only_asked_resources() -> None:
    source = InMemoryQuotaSource(
        {"ns": {"nvidia.com/gpumem": QuotaState(1, 0), "x": QuotaState(1, 0)}}
    )
    assert asyncio.run(source.quota("ns", NAMES)) == {"nvidia.com/gpumem": QuotaState(1, 0)}
    assert asyncio.run(source.quota("other", NAMES)) == {}
