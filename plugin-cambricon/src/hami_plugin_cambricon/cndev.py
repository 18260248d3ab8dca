"""The CNDev adapter: Cambricon's device library (``libcndev.so``) through ctypes, behind the
`SmluBackend` protocol. The only module that loads the vendor library (an import-linter contract
keeps it so).

Discovery asks CNDev for the MLUs (``cndevGetDeviceCount``, ``cndevGetDeviceHandleByIndex``) and,
for each, its UUID (``MLU-<uuid>``, as Cambricon's plugin names it), card name, physical memory
in MB, NUMA node and health (good device and running driver). sMLU instances are made as
Cambricon's plugin makes them in ``dynamic-smlu`` mode: a profile of the quota and memory is
reused when one exists, else created (``cndevCreateSMluProfileInfo``), then an instance of it
(``cndevCreateSMluInstanceByProfileId``) whose device node is read back. A query that fails
makes that MLU unhealthy with CNDev's message, never the process; only a library that cannot be
loaded or initialised is a `BackendInitError`.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import AsyncIterator, Sequence

from hami_common.deviceplugin.backend import (
    BackendInitError,
    HealthChange,
    Links,
    PhysicalDevice,
)

from hami_plugin_cambricon.devices import MluDevice, SmluError, SmluInstance

log = logging.getLogger(__name__)

VERSION = 6  # CNDEV_VERSION_6
UUID_SIZE = 37
NAME_SIZE = 100
DEVICE_GOOD = 1
DRIVER_RUNNING = 4


class _CardInfo(ctypes.Structure):
    _fields_ = [("version", ctypes.c_int32), ("number", ctypes.c_uint32)]


class _Uuid(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_int32),
        ("uuid", ctypes.c_uint8 * UUID_SIZE),
        ("ncsUUID64", ctypes.c_uint64),
    ]


class _MemoryV2(ctypes.Structure):
    _fields_ = [
        ("physicalMemoryTotal", ctypes.c_int64),
        ("physicalMemoryUsed", ctypes.c_int64),
        ("reservedMemory", ctypes.c_int64),
        ("virtualMemoryTotal", ctypes.c_int64),
        ("virtualMemoryUsed", ctypes.c_int64),
        ("globalMemory", ctypes.c_uint64),
        ("reserved", ctypes.c_uint64 * 16),
    ]


class _Health(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_int32),
        ("health", ctypes.c_int32),
        ("deviceState", ctypes.c_int32),
        ("driverState", ctypes.c_int32),
    ]


class _Numa(ctypes.Structure):
    _fields_ = [("version", ctypes.c_int32), ("nodeId", ctypes.c_int32)]


class _SmluSet(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_int32),
        ("mluQuota", ctypes.c_uint32),
        ("memorySize", ctypes.c_uint64),
    ]


class _SmluInfo(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_int32),
        ("profileId", ctypes.c_int32),
        ("instanceId", ctypes.c_int32),
        ("uuid", ctypes.c_uint8 * UUID_SIZE),
        ("domain", ctypes.c_int32),
        ("bus", ctypes.c_int32),
        ("device", ctypes.c_int32),
        ("function", ctypes.c_int32),
        ("profileName", ctypes.c_char * NAME_SIZE),
        ("instanceName", ctypes.c_char * NAME_SIZE),
        ("devNodeName", ctypes.c_char * NAME_SIZE),
        ("mluQuota", ctypes.c_uint32 * 2),
        ("memorySize", ctypes.c_uint64 * 2),
        ("reserved", ctypes.c_uint32 * 128),
    ]


class _ProfileIds(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_int32),
        ("count", ctypes.c_int32),
        ("profileId", ctypes.c_int32 * 128),
    ]


class _ProfileInfo(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_int32),
        ("profileId", ctypes.c_int32),
        ("name", ctypes.c_char * NAME_SIZE),
        ("totalCapacity", ctypes.c_uint32),
        ("remainCapacity", ctypes.c_uint32),
        ("mluQuota", ctypes.c_uint32 * 2),
        ("memorySize", ctypes.c_uint64 * 2),
    ]


class CndevError(RuntimeError):
    pass


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class CndevBackend:
    """MLUs through CNDev; health is polled every ``poll`` seconds."""

    def __init__(self, library: str = "libcndev.so", *, poll: float = 5.0) -> None:
        self.poll = poll
        try:
            self._lib = ctypes.CDLL(library)
        except OSError as exc:
            raise BackendInitError(
                f"cannot load the CNDev library {library!r} ({exc}); install Cambricon's driver "
                "(neuware), or name the library with --cndev-library"
            ) from None
        self._lib.cndevGetErrorString.restype = ctypes.c_char_p
        self._lib.cndevGetCardNameStringByDevId.restype = ctypes.c_char_p
        try:
            self._call("cndevInit", ctypes.c_int32(0))
        except (CndevError, AttributeError) as exc:
            raise BackendInitError(f"CNDev did not initialise: {exc}") from None
        self._handles: dict[int, int] = {}
        self._slot_of: dict[str, int] = {}

    def _call(self, name: str, *args: object) -> None:
        code = int(getattr(self._lib, name)(*args))
        if code != 0:
            message = self._lib.cndevGetErrorString(code)
            text = message.decode() if isinstance(message, bytes) else "unknown"
            raise CndevError(f"{name} failed: CNDev error {code} ({text})")

    def _handle(self, slot: int) -> int:
        if slot not in self._handles:
            handle = ctypes.c_int32(0)
            self._call("cndevGetDeviceHandleByIndex", ctypes.c_int32(slot), ctypes.byref(handle))
            self._handles[slot] = handle.value
        return self._handles[slot]

    def _mlu(self, slot: int) -> MluDevice:
        handle = self._handle(slot)
        uuid = _Uuid(version=VERSION)
        self._call("cndevGetUUID", ctypes.byref(uuid), handle)
        name = self._lib.cndevGetCardNameStringByDevId(handle)
        memory = _MemoryV2()
        self._call("cndevGetMemoryUsageV2", ctypes.byref(memory), handle)
        numa = _Numa(version=VERSION)
        try:
            self._call("cndevGetNUMANodeIdByDevId", ctypes.byref(numa), handle)
        except CndevError:
            numa.nodeId = 0  # HAMi's convention when unknown
        healthy, reason = self._health(handle)
        return MluDevice(
            uuid=f"MLU-{_text(bytes(uuid.uuid))}",
            index=slot,
            model=name.decode() if isinstance(name, bytes) else "",
            memory_mib=int(memory.physicalMemoryTotal),
            numa=max(0, numa.nodeId),
            healthy=healthy,
            reason=reason,
            slot=slot,
        )

    def _health(self, handle: int) -> tuple[bool, str]:
        state = _Health(version=VERSION)
        try:
            self._call("cndevGetCardHealthState", ctypes.byref(state), handle)
        except CndevError as exc:
            return False, str(exc)
        if state.deviceState != DEVICE_GOOD or state.driverState != DRIVER_RUNNING:
            return False, (
                f"CNDev health: device state {state.deviceState}, driver state "
                f"{state.driverState} (good: {DEVICE_GOOD}, running: {DRIVER_RUNNING})"
            )
        return True, ""

    def discover(self) -> list[PhysicalDevice]:
        info = _CardInfo(version=VERSION)
        try:
            self._call("cndevGetDeviceCount", ctypes.byref(info))
        except CndevError as exc:
            raise BackendInitError(f"CNDev cannot count the MLUs: {exc}") from None
        devices: list[PhysicalDevice] = []
        for slot in range(info.number):
            try:
                devices.append(self._mlu(slot))
            except CndevError as exc:
                devices.append(MluDevice(uuid=f"MLU-slot-{slot}", index=slot, model="",
                                         memory_mib=0, healthy=False, reason=f"slot {slot}: {exc}",
                                         slot=slot))  # fmt: skip
        self._slot_of = {d.uuid: d.index for d in devices}
        return devices

    def links(self, devices: Sequence[PhysicalDevice]) -> Links:
        return {}

    async def health_events(self, devices: Sequence[PhysicalDevice]) -> AsyncIterator[HealthChange]:
        known = {d.uuid: d.healthy for d in devices}
        while True:
            await asyncio.sleep(self.poll)
            for uuid, slot in self._slot_of.items():
                if uuid not in known:
                    continue
                try:
                    healthy, reason = self._health(self._handle(slot))
                except CndevError as exc:
                    healthy, reason = False, str(exc)
                if healthy != known[uuid]:
                    known[uuid] = healthy
                    yield HealthChange(uuid, healthy, reason)

    def _profile(self, handle: int, quota: int, size: int) -> int:
        """An existing profile of exactly this quota and size, else a new one."""
        ids = _ProfileIds(version=VERSION)
        self._call("cndevGetSMluProfileIdInfo", ctypes.byref(ids), handle)
        for profile in list(ids.profileId)[: ids.count]:
            info = _ProfileInfo(version=VERSION)
            self._call("cndevGetSMluProfileInfo", ctypes.byref(info), profile, handle)
            if info.mluQuota[0] == quota and info.memorySize[0] == size:
                return int(profile)
        created = ctypes.c_int32(0)
        wanted = _SmluSet(version=VERSION, mluQuota=quota, memorySize=size)
        self._call("cndevCreateSMluProfileInfo", ctypes.byref(wanted), ctypes.byref(created),
                   handle)  # fmt: skip
        return created.value

    def create_smlu(self, slot: int, quota: int, memory_mib: int) -> SmluInstance:
        try:
            handle = self._handle(slot)
            profile = self._profile(handle, quota, memory_mib * 2**20)
            instance = ctypes.c_int32(0)
            self._call("cndevCreateSMluInstanceByProfileId", ctypes.byref(instance),
                       ctypes.c_uint32(profile), handle, ctypes.c_char_p(b""))  # fmt: skip
            info = _SmluInfo(version=VERSION)
            self._call("cndevGetSMluInstanceInfo", ctypes.byref(info), instance)
        except CndevError as exc:
            raise SmluError(f"MLU {slot}: {exc}") from None
        return SmluInstance(profile, instance.value, slot, info.instanceId,
                            _text(bytes(info.devNodeName)))  # fmt: skip

    def close(self) -> None:
        try:
            self._call("cndevRelease")
        except CndevError as exc:
            log.warning("%s", exc)
