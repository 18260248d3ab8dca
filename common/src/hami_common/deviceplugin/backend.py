"""The vendor-neutral view of hardware that every device plugin is built on.

A vendor's hardware sits behind a `DeviceBackend` (NVML for NVIDIA, the fake of
`hami_common.deviceplugin.testing` in tests and e2e); only the backend's adapter imports the
vendor library. What the plugin does with the devices (annotation, Allocate answers) is the
vendor's `VendorPolicy` (`hami_common.deviceplugin.vendor`).

A backend degrades, never fails, per device: a device whose query fails is returned with
``healthy=False`` and a ``reason``; only a backend that cannot start at all raises
`BackendInitError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class BackendInitError(RuntimeError):
    """The vendor library could not be initialised (no driver, no permission...)."""


@dataclass(frozen=True)
class PhysicalDevice:
    """One physical device as discovered."""

    uuid: str
    index: int
    model: str
    """The vendor library's product name, e.g. ``Tesla V100-PCIE-32GB``."""
    memory_mib: int
    numa: int = 0
    """NUMA node of the device's PCI bus; 0 when unknown (HAMi's convention)."""
    mode: str = "hami-core"
    healthy: bool = True
    reason: str = ""
    """Why the device is unhealthy (empty when healthy)."""
    parent: str = ""
    """The device this one is a part of (a MIG instance's GPU): its health changes apply to
    this one too. Empty for a whole device."""


@dataclass(frozen=True)
class HealthChange:
    uuid: str
    healthy: bool
    reason: str = ""


@dataclass(frozen=True)
class Link:
    """How two devices are connected: a PCIe P2P level name (``SameBoard``, ``SingleSwitch``,
    ``MultiSwitch``, ``HostBridge``, ``SameCPU``, ``CrossCPU``; empty when unknown) and the
    number of NVLink-class links between them."""

    p2p: str = ""
    nvlinks: int = 0


Links = Mapping[tuple[str, str], Link]
"""Directed: ``links[(a, b)]`` is what device ``a`` reports about ``b``."""


class DeviceBackend(Protocol):
    """Discovery, health and topology of one vendor's devices on this node."""

    def discover(self) -> list[PhysicalDevice]:
        """Every device, in index order. Raises `BackendInitError` only when the vendor
        library is unusable; a failing device is returned unhealthy with a reason."""
        ...

    def links(self, devices: Sequence[PhysicalDevice]) -> Links:
        """Pairwise topology between healthy devices (empty when the backend has none)."""
        ...

    def health_events(self, devices: Sequence[PhysicalDevice]) -> AsyncIterator[HealthChange]:
        """Health changes, per device, until cancelled."""
        ...

    def close(self) -> None: ...


async def follow_health(
    backend: DeviceBackend,
    devices: Callable[[], Sequence[PhysicalDevice]],
    apply: Callable[[HealthChange], Awaitable[bool]],
    stop: asyncio.Event,
    *,
    restart_delay: float,
    log: logging.Logger,
) -> None:
    """Until ``stop``: each health change of ``devices()`` handed to ``apply``, which says
    whether it changed a device (then one warning line on ``log`` says how). A watcher that
    fails is logged and started again after ``restart_delay`` seconds (one bad device degrades
    that device, never the plugin); a watcher that ends ends this."""
    while not stop.is_set():
        try:
            async for change in backend.health_events(devices()):
                if await apply(change):
                    state = "healthy" if change.healthy else f"unhealthy: {change.reason}"
                    log.warning("device %s is %s", change.uuid, state)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("health watcher failed; restarting it")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), restart_delay)
