"""Builders shared by the DRA tests and the e2e harness: ResourceClaims as kube-scheduler leaves
them once allocated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Json = dict[str, Any]


def allocated_claim(
    name: str,
    *,
    namespace: str = "default",
    uid: str | None = None,
    driver: str,
    pool: str,
    devices: Sequence[tuple[str, Mapping[str, str]]],
    request: str = "gpu",
) -> Json:
    """A claim with ``status.allocation``: one result per ``(device, consumedCapacity)`` (an
    empty mapping: the device allocated whole, no share ID)."""
    results = []
    for i, (device, consumed) in enumerate(devices):
        result: Json = {"request": request, "driver": driver, "pool": pool, "device": device}
        if consumed:
            result["shareID"] = f"{uid or name}-share-{i}"
            result["consumedCapacity"] = dict(consumed)
        results.append(result)
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}"},
        "spec": {"devices": {"requests": [{"name": request}]}},
        "status": {"allocation": {"devices": {"results": results}}},
    }
