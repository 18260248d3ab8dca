"""The NVML adapter: the only module that imports the vendor library (nvidia-ml-py).

Every query is per device and guarded: a device whose query fails is reported unhealthy with
the NVML error, never a crash (HAMi panics on any failed query, #2233/#2230). Only a failed
``nvmlInit`` is fatal (`BackendInitError`, with the usual causes in the message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pynvml  # type: ignore[import-untyped]
from hami_common.deviceplugin.backend import (
    BackendInitError,
    HealthChange,
    Link,
    Links,
    PhysicalDevice,
)

from hami_plugin_nvidia.mig import (
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_NOT_FOUND,
    MigError,
    MigInstance,
    profile_table,
)

log = logging.getLogger(__name__)

# Application errors, not device faults (upstream's list).
IGNORED_XIDS = frozenset({13, 31, 43, 45, 68, 109})
_P2P = {
    0: "SameBoard",  # NVML_TOPOLOGY_INTERNAL
    10: "SingleSwitch",
    20: "MultiSwitch",
    30: "HostBridge",
    40: "SameCPU",  # NVML_TOPOLOGY_NODE
    50: "CrossCPU",  # NVML_TOPOLOGY_SYSTEM
}
_WAIT_MS = 5000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def numa_of(bus_id: str, sysfs: Path = Path("/sys/bus/pci/devices")) -> int:
    """The NUMA node of a PCI bus ID from sysfs; 0 when unknown or negative."""
    bus = bus_id.lower()
    if bus.startswith("0000") and len(bus) > 12:
        bus = bus[4:]
    for name in (bus, f"0000{bus}" if len(bus) == 12 else bus):
        try:
            return max(0, int((sysfs / name / "numa_node").read_text().strip()))
        except (OSError, ValueError):
            continue
    return 0


class NvmlBackend:
    def __init__(self, disabled_xids: frozenset[int] = frozenset()) -> None:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise BackendInitError(
                f"NVML could not be initialised ({exc}); is the NVIDIA driver installed, is "
                "libnvidia-ml.so.1 on the library path, and does the plugin run with the "
                "nvidia runtime or privileged?"
            ) from None
        self.ignored_xids = IGNORED_XIDS | disabled_xids
        self._bus: dict[str, str] = {}

    def discover(self) -> list[PhysicalDevice]:
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            raise BackendInitError(f"NVML could not count devices: {exc}") from None
        return [self._device(i) for i in range(count)]

    def _device(self, index: int) -> PhysicalDevice:
        uuid = f"GPU-unknown-{index}"
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            name = _text(pynvml.nvmlDeviceGetName(handle))
            bus = _text(pynvml.nvmlDeviceGetPciInfo(handle).busId)
            self._bus[uuid] = bus
            try:
                memory = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024)
            except pynvml.NVMLError_NotSupported:
                memory = 0  # unified memory: preConfiguredDeviceMemory applies
            mode = "hami-core"
            try:
                current, _ = pynvml.nvmlDeviceGetMigMode(handle)
                if current == pynvml.NVML_DEVICE_MIG_ENABLE:
                    mode = "mig"
            except pynvml.NVMLError:
                pass
            return PhysicalDevice(uuid, index, name, memory, numa_of(bus), mode)
        except pynvml.NVMLError as exc:
            log.error("GPU %d: NVML query failed (%s); reported unhealthy", index, exc)
            return PhysicalDevice(uuid, index, "", 0, healthy=False, reason=f"NVML: {exc}")

    def links(self, devices: Sequence[PhysicalDevice]) -> Links:
        out: dict[tuple[str, str], Link] = {}
        for a in devices:
            for b in devices:
                if a.uuid == b.uuid:
                    continue
                try:
                    ha = pynvml.nvmlDeviceGetHandleByUUID(a.uuid)
                    hb = pynvml.nvmlDeviceGetHandleByUUID(b.uuid)
                    level = pynvml.nvmlDeviceGetTopologyCommonAncestor(ha, hb)
                    out[(a.uuid, b.uuid)] = Link(_P2P.get(int(level), ""), self._nvlinks(ha, b))
                except pynvml.NVMLError as exc:
                    log.warning("topology of %s -> %s unknown: %s", a.uuid, b.uuid, exc)
        return out

    def _nvlinks(self, handle: object, other: PhysicalDevice) -> int:
        target = self._bus.get(other.uuid, "").lower()
        count = 0
        for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
            try:
                if pynvml.nvmlDeviceGetNvLinkState(handle, link) != pynvml.NVML_FEATURE_ENABLED:
                    continue
                remote = _text(pynvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId)
            except pynvml.NVMLError:
                continue
            count += int(remote.lower() == target)
        return count

    async def health_events(self, devices: Sequence[PhysicalDevice]) -> AsyncIterator[HealthChange]:
        events = pynvml.nvmlEventSetCreate()
        handles: dict[str, object] = {}
        try:
            for dev in devices:
                if not dev.healthy:
                    continue
                try:
                    handle = pynvml.nvmlDeviceGetHandleByUUID(dev.uuid)
                    pynvml.nvmlDeviceRegisterEvents(
                        handle, pynvml.nvmlEventTypeXidCriticalError, events
                    )
                    handles[dev.uuid] = handle
                except pynvml.NVMLError_NotSupported:
                    log.info("device %s: XID events not supported; health not watched", dev.uuid)
                except pynvml.NVMLError as exc:
                    yield HealthChange(dev.uuid, False, f"cannot watch XID events: {exc}")
            while True:
                try:
                    data = await asyncio.to_thread(pynvml.nvmlEventSetWait_v2, events, _WAIT_MS)
                except pynvml.NVMLError_Timeout:
                    continue
                xid = int(data.eventData)
                if (
                    data.eventType != pynvml.nvmlEventTypeXidCriticalError
                    or xid in self.ignored_xids
                ):
                    continue
                try:
                    uuid = _text(pynvml.nvmlDeviceGetUUID(data.device))
                except pynvml.NVMLError as exc:
                    log.error("XID %d on a device NVML cannot name (%s)", xid, exc)
                    continue
                yield HealthChange(uuid, False, f"XID {xid}")
        finally:
            pynvml.nvmlEventSetFree(events)

    def close(self) -> None:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as exc:
            log.debug("nvmlShutdown: %s", exc)


# NVML_COMPUTE_INSTANCE_PROFILE_* by compute slices.
_CI_PROFILE = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4, 8: 5, 6: 6}


class NvmlMig:
    """`hami_plugin_nvidia.mig.MigDevices` over NVML: GPU instances at an exact placement, a
    compute instance over all of each (engine profile SHARED, as HAMi), found again through
    the MIG device handles (UUID, GPU and compute instance ids)."""

    def _handle(self, gpu_uuid: str) -> object:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(gpu_uuid)
        except pynvml.NVMLError as exc:
            raise MigError(int(exc.value), f"GPU {gpu_uuid}: {exc}") from None

    def model(self, gpu_uuid: str) -> str:
        return _text(pynvml.nvmlDeviceGetName(self._handle(gpu_uuid)))

    def instances(self, gpu_uuid: str) -> list[MigInstance]:
        handle = self._handle(gpu_uuid)
        names = {
            nvml_id: name for name, (nvml_id, _s, _p) in profile_table(self.model(gpu_uuid)).items()
        }
        out = []
        try:
            for i in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
                try:
                    mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
                except pynvml.NVMLError_NotFound:
                    continue
                gi_id = int(pynvml.nvmlDeviceGetGpuInstanceId(mig))
                info = pynvml.nvmlGpuInstanceGetInfo(
                    pynvml.nvmlDeviceGetGpuInstanceById(handle, gi_id)
                )
                out.append(MigInstance(
                    gpu_uuid, gi_id, int(pynvml.nvmlDeviceGetComputeInstanceId(mig)),
                    names.get(int(info.profileId), f"profile-{info.profileId}"),
                    int(info.placement.start), int(info.placement.size),
                    _text(pynvml.nvmlDeviceGetUUID(mig)),
                ))  # fmt: skip
        except pynvml.NVMLError as exc:
            raise MigError(int(exc.value), f"GPU {gpu_uuid}: listing MIG devices: {exc}") from None
        return out

    def create(self, gpu_uuid: str, profile: str, start: int, size: int) -> MigInstance:
        handle = self._handle(gpu_uuid)
        table = profile_table(self.model(gpu_uuid))
        if profile not in table:
            raise MigError(NVML_ERROR_INVALID_ARGUMENT, f"GPU {gpu_uuid}: no profile {profile}")
        nvml_id, slices, _placements = table[profile]
        try:
            info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, nvml_id)
            placement = pynvml.c_nvmlGpuInstancePlacement_t()
            placement.start, placement.size = start, size
            gi = pynvml.nvmlDeviceCreateGpuInstanceWithPlacement(handle, info.id, placement)
        except pynvml.NVMLError as exc:
            raise MigError(
                int(exc.value), f"GPU {gpu_uuid}: {profile} at {start}+{size}: {exc}"
            ) from None
        try:
            ci_info = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
                gi, _CI_PROFILE[slices], pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
            )
            pynvml.nvmlGpuInstanceCreateComputeInstance(gi, ci_info.id)
            gi_id = int(pynvml.nvmlGpuInstanceGetInfo(gi).id)
        except pynvml.NVMLError as exc:
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlGpuInstanceDestroy(gi)  # no half-made instance left behind
            raise MigError(int(exc.value), f"GPU {gpu_uuid}: compute instance: {exc}") from None
        for inst in self.instances(gpu_uuid):
            if inst.gpu_instance_id == gi_id:
                return inst
        raise MigError(
            NVML_ERROR_NOT_FOUND, f"GPU {gpu_uuid}: instance {gi_id} made but not listed"
        )

    def enable(self, gpu_uuid: str, model: str) -> bool:
        handle = self._handle(gpu_uuid)
        try:
            if pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                return False
            status = pynvml.nvmlDeviceSetMigMode(handle, pynvml.NVML_DEVICE_MIG_ENABLE)
        except pynvml.NVMLError as exc:  # MigError: NO_PERMISSION says how to grant it
            log.warning("GPU %s: MIG mode not turned on: %s", gpu_uuid,
                        MigError(int(exc.value), str(exc)))  # fmt: skip
            return False
        if status != pynvml.NVML_SUCCESS:  # pending until the GPU is reset
            log.warning("GPU %s: MIG mode waits for a GPU reset (status %d)", gpu_uuid, status)
            return False
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
        return bool(current == pynvml.NVML_DEVICE_MIG_ENABLE)

    def destroy(self, gpu_uuid: str, gpu_instance_id: int) -> None:
        handle = self._handle(gpu_uuid)
        try:
            gi = pynvml.nvmlDeviceGetGpuInstanceById(handle, gpu_instance_id)
            for inst in self.instances(gpu_uuid):
                if inst.gpu_instance_id == gpu_instance_id:
                    pynvml.nvmlComputeInstanceDestroy(
                        pynvml.nvmlGpuInstanceGetComputeInstanceById(gi, inst.compute_instance_id)
                    )
            pynvml.nvmlGpuInstanceDestroy(gi)
        except pynvml.NVMLError as exc:
            raise MigError(
                int(exc.value), f"GPU {gpu_uuid}: destroy {gpu_instance_id}: {exc}"
            ) from None
