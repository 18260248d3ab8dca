"""Namespace label sources: cached API lookups that fail open."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from hami_common.k8s import KubeClient, NotFound, Resource
from hami_webhook.namespaces import InMemoryNamespaceSource, KubeNamespaceSource


class FakeKube:
    def __init__(self) -> None:
        self.gets = 0
        self.labels: dict[str, str] = {"hami.io/webhook": "ignore"}

    async def get(self, resource: Resource, name: str) -> dict[str, Any]:
        self.gets += 1
        if name == "missing":
            raise NotFound('namespaces "missing" not found')
        return {"metadata": {"name": name, "labels": dict(self.labels)}}


def test_labels_are_cached_for_the_ttl() -> None:
    fake, now = FakeKube(), [0.0]
    source = KubeNamespaceSource(cast(KubeClient, fake), ttl=30, clock=lambda: now[0])
    assert asyncio.run(source.labels("team")) == {"hami.io/webhook": "ignore"}
    fake.labels = {}
    now[0] = 29.0
    assert asyncio.run(source.labels("team")) == {"hami.io/webhook": "ignore"}
    now[0] = 31.0
    assert asyncio.run(source.labels("team")) == {}
    assert fake.gets == 2


def test_a_failed_lookup_means_no_labels() -> None:
    source = KubeNamespaceSource(cast(KubeClient, FakeKube()))
    assert asyncio.run(source.labels("missing")) == {}


def test_in_memory_source() -> None:
    source = InMemoryNamespaceSource({"a": {"k": "v"}})
    assert asyncio.run(source.labels("a")) == {"k": "v"}
    assert asyncio.run(source.labels("b")) == {}
