"""The plugin's device table: physical devices, their health, and the virtual IDs kubelet sees.

Each physical device is advertised as ``split_count`` IDs ``<uuid>-<i>`` (HAMi's replicas), so
the node's resource count is devices x split count. `DeviceTable` is the single place health
changes land; ListAndWatch streams wait on it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import replace

from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.api.services import HEALTHY, UNHEALTHY
from hami_common.deviceplugin.backend import HealthChange, PhysicalDevice

_REPLICA = re.compile(r"^(?P<uuid>.+)-(?P<n>\d+)$")


def virtual_ids(uuid: str, split_count: int) -> list[str]:
    return [f"{uuid}-{i}" for i in range(split_count)]


def physical_id(device_id: str, known: Iterable[str] = ()) -> str:
    """The physical UUID behind a virtual ID: ``GPU-x-3`` -> ``GPU-x``; ``GPU-x::3`` (HAMi's
    annotated form) -> ``GPU-x``. An ID that is a known UUID itself is returned as-is."""
    known_set = set(known)
    if device_id in known_set:
        return device_id
    if "::" in device_id:
        return device_id.split("::", 1)[0]
    match = _REPLICA.match(device_id)
    if match and (not known_set or match["uuid"] in known_set):
        return match["uuid"]
    return device_id


class DeviceTable:
    """Physical devices and health; a version number that ListAndWatch follows."""

    def __init__(
        self,
        devices: list[PhysicalDevice],
        split_count: int,
        numa: bool,
        replicas: Callable[[PhysicalDevice], int] | None = None,
        *,
        as_is: bool = False,
    ) -> None:
        """``replicas``: IDs per device when they differ by device (Cambricon's memory units);
        ``split_count`` for every device otherwise. ``as_is``: each device is listed once by its
        own ID, no replicas (static MIG instances, as HAMi lists them)."""
        self._devices = {d.uuid: d for d in devices}
        self._order = [d.uuid for d in devices]
        self.split_count = split_count
        self.replicas = replicas
        self.numa = numa
        self.as_is = as_is
        self.version = 0
        self._changed = asyncio.Condition()

    @property
    def devices(self) -> list[PhysicalDevice]:
        return [self._devices[u] for u in self._order]

    def get(self, uuid: str) -> PhysicalDevice | None:
        return self._devices.get(uuid)

    async def apply(self, change: HealthChange) -> bool:
        """Applies a health change to the device and to its parts (``parent``); returns whether
        anything changed (unknown UUIDs ignored)."""
        changed = False
        for uuid, current in list(self._devices.items()):
            if change.uuid not in (uuid, current.parent) or (
                current.healthy == change.healthy and current.reason == change.reason
            ):
                continue
            self._devices[uuid] = replace(
                current, healthy=change.healthy, reason="" if change.healthy else change.reason
            )
            changed = True
        if not changed:
            return False
        async with self._changed:
            self.version += 1
            self._changed.notify_all()
        return True

    async def wait_change(self, seen: int) -> int:
        """Waits until the version moves past ``seen``; returns the new version."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.version != seen)
            return self.version

    def list_response(self) -> pb.ListAndWatchResponse:
        out = pb.ListAndWatchResponse()
        for dev in self.devices:
            health = HEALTHY if dev.healthy else UNHEALTHY
            count = self.replicas(dev) if self.replicas is not None else self.split_count
            for vid in [dev.uuid] if self.as_is else virtual_ids(dev.uuid, count):
                item = out.devices.add(ID=vid, health=health)
                if self.numa:
                    item.topology.nodes.add(ID=dev.numa)
        return out
