"""Namespace label sources: cached API lookups that fail open."""

from __future__ import annotations

import asyncio

from hami_common.k8s import NAMESPACES
from hami_common.k8s.testing import FakeApiServer
from hami_webhook.namespaces import InMemoryNamespaceSource, KubeNamespaceSource


def _api(labels: dict[str, str]) -> FakeApiServer:
    api = FakeApiServer()
    api.add(NAMESPACES, {"metadata": {"name": "team", "labels": labels}})
    return api


def test_labels_are_cached_for_the_ttl() -> None:
    api, now = _api({"hami.io/webhook": "ignore"}), [0.0]
    source = KubeNamespaceSource(api.client(), ttl=30, clock=lambda: now[0])
    assert asyncio.run(source.labels("team")) == {"hami.io/webhook": "ignore"}
    api.obj(NAMESPACES, "team")["metadata"]["labels"] = {}
    now[0] = 29.0
    assert asyncio.run(source.labels("team")) == {"hami.io/webhook": "ignore"}
    now[0] = 31.0
    assert asyncio.run(source.labels("team")) == {}
    assert [method for method, _ in api.requests] == ["GET", "GET"]


def test_a_failed_lookup_means_no_labels() -> None:
    source = KubeNamespaceSource(_api({}).client())
    assert asyncio.run(source.labels("missing")) == {}


def test_in_memory_source() -> None:
    source = InMemoryNamespaceSource({"a": {"k": "v"}})
    assert asyncio.run(source.labels("a")) == {"k": "v"}
    assert asyncio.run(source.labels("b")) == {}
