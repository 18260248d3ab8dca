"""Quota sources: the in-memory one, and the API-backed one over ResourceQuotas and live pods."""

from __future__ import annotations

import asyncio
from typing import Any

from hami_common.k8s import PODS, RESOURCE_QUOTAS
from hami_common.k8s.testing import FakeApiServer
from hami_common.settings import DeviceConfig
from hami_webhook.devices import DeviceModel
from hami_webhook.quota import InMemoryQuotaSource, KubeQuotaSource, QuotaState
from hami_webhook.testing import container, pod

MODEL = DeviceModel.from_config(DeviceConfig())
NAMES = ["nvidia.com/gpumem", "nvidia.com/gpucores"]


def _quota(name: str, hard: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"hard": hard}}


def _gpu_pod(mem: str, count: str = "1", **extra: Any) -> dict[str, Any]:
    p = pod(container(limits={"nvidia.com/gpu": count, "nvidia.com/gpumem": mem}))
    p.update(extra)
    return p


def _source(
    quotas: list[dict[str, Any]], pods: list[dict[str, Any]]
) -> tuple[KubeQuotaSource, FakeApiServer]:
    api = FakeApiServer()
    for quota in quotas:
        api.add(RESOURCE_QUOTAS, quota)
    for i, p in enumerate(pods):
        meta = p.setdefault("metadata", {})
        meta.update(name=f"{meta.get('name', 'p')}-{i}", namespace="ns")  # one object each
        api.add(PODS, p)
    api.add(PODS, {**_gpu_pod("9000"), "metadata": {"name": "elsewhere", "namespace": "other"}})
    return KubeQuotaSource(api.client(), MODEL), api


def _lists(api: FakeApiServer) -> list[str]:
    return [url.split("?")[0].removeprefix("https://fake.invalid") for _, url in api.requests]


def test_kube_source_takes_the_tightest_limit_and_sums_live_pods() -> None:
    source, api = _source(
        [
            _quota("a", {"limits.nvidia.com/gpumem": "10000", "requests.cpu": "4"}),
            _quota("b", {"limits.nvidia.com/gpumem": "8000"}),
        ],
        [
            _gpu_pod("1000"),
            _gpu_pod("2000", count="2"),
            _gpu_pod("7000", status={"phase": "Succeeded"}),
            _gpu_pod("7000", metadata={"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"}),
            {"metadata": {"name": "garbage"}, "spec": "garbage"},
            _gpu_pod("4Gi"),  # the core refuses it: nothing can be placed, nothing counts
        ],
    )
    got = asyncio.run(source.quota("ns", NAMES))
    assert got == {"nvidia.com/gpumem": QuotaState(limit=8000, used=5000)}
    assert _lists(api) == ["/api/v1/namespaces/ns/resourcequotas", "/api/v1/namespaces/ns/pods"]


def test_kube_source_without_device_quota_does_not_list_pods() -> None:
    hard = {
        "requests.cpu": "4",
        "limits.nvidia.com/gpumem": "lots",
        "limits.nvidia.com/gpucores": "0.5",
    }
    source, api = _source([_quota("q", hard)], [])
    assert asyncio.run(source.quota("ns", NAMES)) == {}
    assert _lists(api) == ["/api/v1/namespaces/ns/resourcequotas"]


def test_in_memory_source_returns_only_asked_resources() -> None:
    source = InMemoryQuotaSource(
        {"ns": {"nvidia.com/gpumem": QuotaState(1, 0), "x": QuotaState(1, 0)}}
    )
    assert asyncio.run(source.quota("ns", NAMES)) == {"nvidia.com/gpumem": QuotaState(1, 0)}
    assert asyncio.run(source.quota("other", NAMES)) == {}
