"""Namespaces for the suites, the benchmarks and the demo: usable once the controller-manager has
created their ``default`` ServiceAccount (the ServiceAccount admission plugin rejects pods until
then)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from hami_common.k8s import NAMESPACES, SERVICE_ACCOUNTS, KubeClient, NotFound

READY_WITHIN = 30.0


async def create_namespace(
    kube: KubeClient,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    within: float = READY_WITHIN,
) -> str:
    """Creates namespace ``name`` (with ``labels``) and returns its name once its default
    ServiceAccount exists; `TimeoutError` naming the controller-manager when it does not within
    ``within`` seconds."""
    meta: dict[str, object] = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    await kube.create(NAMESPACES, {"metadata": meta})
    deadline = time.monotonic() + within
    while True:
        try:
            await kube.get(SERVICE_ACCOUNTS, "default", namespace=name)
            return name
        except NotFound:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"namespace {name}: the controller-manager created no default "
                    f"ServiceAccount in {within}s"
                ) from None
            await asyncio.sleep(0.1)
