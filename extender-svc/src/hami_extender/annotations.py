"""The pod annotations HAMi's device plugins read, built from a filter decision (§3.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import hami_rustcore as core
from hami_common.protocol.annotations import VGPU_NODE, VGPU_TIME


def allocation_annotations(
    node: str,
    containers: Sequence[Sequence[core.AllocDevice]],
    specs: Mapping[str, Mapping[str, Any]],
    now: float,
    extra: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """All annotations to write, and the subset that are the vendors' allocated keys.

    Each vendor present gets its to-allocate and allocated keys, both with the same value: one
    entry per container in container order (init first), listing only that vendor's devices.
    ``extra``: the vendors' own annotations the core wrote with the decision
    (`hami_rustcore.FilterResult.annotations`: Ascend's ``huawei.com/<CW>`` and
    ``predicate-time``, Cambricon's ``CAMBRICON_DSMLU_ASSIGNED`` and ``_PROFILE``).
    """
    out = {VGPU_NODE: node, VGPU_TIME: str(int(now)), **(extra or {})}
    allocated: dict[str, str] = {}
    vendors = {d.vendor for devices in containers for d in devices}
    for vendor in sorted(vendors):
        spec = specs.get(vendor)
        if spec is None:
            continue
        per_container = [[d for d in devices if d.vendor == vendor] for devices in containers]
        value = core.encode_pod_devices(per_container)
        out[str(spec["to_allocate_annotation"])] = value
        out[str(spec["allocated_annotation"])] = value
        allocated[str(spec["allocated_annotation"])] = value
    return out, allocated
