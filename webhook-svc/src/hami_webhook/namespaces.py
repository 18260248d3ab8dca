"""Namespace labels, for the ``hami.io/webhook: ignore`` opt-out on namespaces.

The webhook registration's namespaceSelector normally keeps such namespaces away; this check
makes the opt-out hold even when the registration lacks the selector. A lookup that fails is
logged and treated as "no labels" (the pod is processed), so an API outage cannot block pods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from hami_common.k8s import NAMESPACES, ApiError, KubeClient

log = logging.getLogger(__name__)


class NamespaceSource(Protocol):
    async def labels(self, namespace: str) -> Mapping[str, str]: ...


class InMemoryNamespaceSource:
    def __init__(self, labels: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.namespaces = {ns: dict(v) for ns, v in (labels or {}).items()}

    async def labels(self, namespace: str) -> Mapping[str, str]:
        return self.namespaces.get(namespace, {})


class KubeNamespaceSource:
    """GET the namespace, cached for `ttl` seconds. Needs RBAC get on namespaces."""

    def __init__(
        self,
        client: KubeClient,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, Mapping[str, str]]] = {}

    async def labels(self, namespace: str) -> Mapping[str, str]:
        now = self.clock()
        cached = self._cache.get(namespace)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            obj = await self.client.get(NAMESPACES, namespace)
        except ApiError as exc:
            log.warning(
                "namespace %s: cannot read its labels (%s); processing the pod", namespace, exc
            )
            return {}
        labels = (obj.get("metadata") or {}).get("labels") or {}
        result = {k: v for k, v in labels.items() if isinstance(v, str)}
        self._cache[namespace] = (now, result)
        return result
