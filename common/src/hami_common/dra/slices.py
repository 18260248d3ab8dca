"""The node's ResourceSlice: one per driver and node, with the whole pool in it.

The slice is named ``<node>-<driver>`` (dots made dashes) and carries the Node as owner, so it
goes away with the Node. `publish` writes only when the devices differ from what it last wrote
(a digest of them in an annotation: the API server rewrites quantities),
and then bumps the pool generation (the scheduler ignores slices of older generations).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from hami_common.k8s import NODES, RESOURCE_SLICES, KubeClient, NotFound

log = logging.getLogger(__name__)
Json = dict[str, Any]


DIGEST = "hami.io/dra-devices-digest"


def _digest(devices: list[Json]) -> str:
    return hashlib.sha256(json.dumps(devices, sort_keys=True).encode()).hexdigest()[:32]


def slice_name(node: str, driver: str) -> str:
    return f"{node}-{driver.replace('.', '-')}"[:253]


def build_slice(node: str, driver: str, devices: list[Json], generation: int = 1) -> Json:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": slice_name(node, driver), "annotations": {DIGEST: _digest(devices)}},
        "spec": {
            "driver": driver,
            "nodeName": node,
            "pool": {"name": node, "generation": generation, "resourceSliceCount": 1},
            "devices": devices,
        },
    }


async def publish(client: KubeClient, node: str, driver: str, devices: list[Json]) -> Json:
    """Creates or updates the node's slice; returns it as stored."""
    name = slice_name(node, driver)
    try:
        current: Json | None = await client.get(RESOURCE_SLICES, name)
    except NotFound:
        current = None
    if current is None:
        body = build_slice(node, driver, devices)
        try:
            owner = await client.get(NODES, node, metadata_only=True)
            body["metadata"]["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": node,
                 "uid": owner["metadata"]["uid"]}
            ]  # fmt: skip
        except NotFound:
            log.warning("node %s not found: its ResourceSlice has no owner", node)
        created = await client.create(RESOURCE_SLICES, body)
        log.info("published ResourceSlice %s (%d devices)", name, len(devices))
        return created
    spec = current.get("spec") or {}
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    if annotations.get(DIGEST) == _digest(devices) and spec.get("nodeName") == node:
        return current
    generation = int((spec.get("pool") or {}).get("generation") or 0) + 1
    body = build_slice(node, driver, devices, generation)
    body["metadata"] = {
        **current["metadata"],
        "annotations": {**annotations, DIGEST: _digest(devices)},
    }
    updated = await client.replace(RESOURCE_SLICES, body)
    log.info("updated ResourceSlice %s (generation %d)", name, generation)
    return updated
