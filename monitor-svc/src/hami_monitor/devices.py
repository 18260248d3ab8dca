"""The node's devices as their own driver reports them: one source per vendor, behind one
protocol, so Ascend or Cambricon add a module and a line in `SOURCES`, not a fork.

A source also names the pod annotation whose entries say which physical device each of a
container's device indices is (NVIDIA: ``hami.io/vgpu-devices-allocated``): the hook's region
is indexed by the device number inside the container.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class HostDevice:
    """One physical device; None where the driver cannot say (NVML's NOT_SUPPORTED)."""

    index: int
    uuid: str
    type: str
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    utilization: float | None  # percent of time busy, 0..100
    memory_utilization: float | None  # memory controller, 0..100


class SourceError(RuntimeError):
    """The driver could not be opened or queried; the message says what to check."""


class DeviceSource(Protocol):
    vendor: str
    allocated_annotation: str  # the pod annotation of the devices each container got

    def devices(self) -> Sequence[HostDevice]:
        """Every device now; a device whose query fails is left out (logged), never a crash."""

    def close(self) -> None: ...


class NoDevices:
    """``--vendor none``: the containers' regions only (a node whose driver the monitor does
    not know yet)."""

    vendor = "none"
    allocated_annotation = "hami.io/vgpu-devices-allocated"

    def devices(self) -> Sequence[HostDevice]:
        return ()

    def close(self) -> None:
        pass


def _nvidia() -> DeviceSource:
    module = importlib.import_module("hami_monitor.nvml")  # imports NVML only when chosen
    source: DeviceSource = module.NvmlSource()
    return source


SOURCES: dict[str, Callable[[], DeviceSource]] = {"nvidia": _nvidia, "none": NoDevices}


def open_source(vendor: str) -> DeviceSource:
    """The source for ``--vendor``; `SourceError` when its driver cannot be opened."""
    factory = SOURCES.get(vendor)
    if factory is None:
        raise SourceError(f"--vendor {vendor!r} is not one of {', '.join(sorted(SOURCES))}")
    return factory()
