"""Builders for the monitor's tests and benchmarks: pods as the API holds them, container folders
holding region images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hami_common.shm.testing import region_image, write_region

Json = dict[str, Any]
ALLOCATED = "hami.io/vgpu-devices-allocated"
MIB = 1 << 20


def gpu_pod(
    name: str, devices: list[list[tuple[str, int, int]]], *, namespace: str = "team",
    containers: list[str] | None = None, node: str = "node-1",
) -> Json:  # fmt: skip
    """A pod placed on `node` whose containers got ``(uuid, MiB, cores)`` devices."""
    names = containers or [f"c{i}" for i in range(len(devices))]
    value = "".join("".join(f"{u},NVIDIA,{m},{c}:" for u, m, c in entry) + ";" for entry in devices)
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                     "annotations": {ALLOCATED: value}},
        "spec": {"nodeName": node, "containers": [{"name": n} for n in names]},
    }  # fmt: skip


def container_region(root: Path, uid: str, container: str, **image: Any) -> Path:
    """``root/<uid>_<container>/<id>.cache`` holding a region image."""
    return write_region(root / f"{uid}_{container}" / "r1.cache", region_image(**image))
