"""The hook's shared region, layout version 2 (hook/src/region.h, documented in hook/README.md).

The node monitor reads it to export per-container usage and writes three control fields
(utilisation switch, priority block, memory limit). Every field the hook updates concurrently
is a naturally aligned integer, so a snapshot reads each one whole; the snapshot as a whole is
not atomic (counters may move between fields), which is fine for metrics. The control writes are
single aligned stores through a mapping (as the hook's own atomics), never byte by byte.
`read_snapshot` (reader.py) is the monitor's way in: it reads with ``pread``, so a file that a
container truncates or rewrites meanwhile is an error, never a crash (SIGBUS) of the reader.

    python -m hami_common.shm.region PATH      # print a snapshot as JSON
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import struct
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

MAGIC = 0x315253494D414855  # b"UHAMISR1" read as a little-endian u64
VERSION = 2
HEADER_SIZE = 256
DEVICES = 32
SLOTS = 1024
DEVICE_SIZE = 64
SLOT_SIZE = 896
DEVICES_OFFSET = 256
SLOTS_OFFSET = DEVICES_OFFSET + DEVICES * DEVICE_SIZE
REGION_SIZE = SLOTS_OFFSET + SLOTS * SLOT_SIZE
FUTEX_OWNER_DIED = 0x40000000
SLOT_ACTIVE = 1

# Header: magic, version, header_size, region_size, device_count, slot_count, device_size,
# slot_size, devices_offset, slots_offset, priority, util_switch, recent_kernel, slot_hw,
# last_kernel_s, generation, reclaimed.
_HEADER = struct.Struct("<QIIQIIIIIIiiiIQQQ")
# limit, used, sm_limit, reserved, vt, busy, peak, ctx, spilled (64 bytes), for the whole array
_DEVICES = struct.Struct("<" + "QQIIQQQQQ" * 32)
_SLOT_HEAD = struct.Struct("<iIQi")  # pid, state, generation, host_pid at offset 64
_SLOT_USED = struct.Struct(f"<{DEVICES}Q")  # used at 128, ctx at 384, spilled at 640
OFF_UTIL_SWITCH = 52
OFF_RECENT_KERNEL = 56


class RegionError(ValueError):
    """The bytes are not a version-2 region (wrong magic, version, geometry or size)."""


class RegionNotReadyError(RegionError):
    """The file is being created: empty, or its header not written yet (magic still 0)."""


@dataclass(slots=True)  # not frozen: a monitor builds 32 per region per scrape, 3x faster
class DeviceUsage:
    index: int
    limit_bytes: int  # 0 = unlimited
    used_bytes: int
    sm_limit_pct: int  # 0 = unlimited
    busy_ns: int  # GPU time charged by the SM limiter
    peak_bytes: int
    ctx_bytes: int = 0  # of used: what the driver holds beyond allocations (contexts, modules)
    spilled_bytes: int = 0  # of used: allocations backed by host memory (oversubscription)


@dataclass(slots=True)
class ProcessSlot:
    index: int
    pid: int
    alive: bool  # False: died, usage not yet reclaimed by the next allocation or query
    used_bytes: tuple[int, ...]  # per device
    host_pid: int = 0  # the PID the driver knows it by (0: not known)
    ctx_bytes: tuple[int, ...] = ()  # per device, of used_bytes: contexts, modules
    spilled_bytes: tuple[int, ...] = ()  # per device, of used_bytes: in host memory


@dataclass(frozen=True)
class RegionSnapshot:
    version: int
    priority: int
    utilization_switch: int
    recent_kernel: int
    last_kernel_s: int
    generation: int
    reclaimed: int
    boot_id: str  # the boot that formatted it; a region from another boot is stale
    devices: tuple[DeviceUsage, ...]
    processes: tuple[ProcessSlot, ...]  # registered slots only

    def active_devices(self) -> tuple[DeviceUsage, ...]:
        """Devices with a limit or any usage."""
        return tuple(d for d in self.devices if d.limit_bytes or d.used_bytes or d.sm_limit_pct)


def parse_region(data: bytes, *, processes: bool = True) -> RegionSnapshot:
    """Decode a region image; raises RegionError for anything that is not layout version 2.
    ``processes=False``: `data` may stop after the devices (the slots are not read and no
    process is listed); the caller checks the file's size."""
    if len(data) < HEADER_SIZE:
        raise RegionError(f"region is {len(data)} bytes, shorter than its header")
    h = _HEADER.unpack_from(data, 0)
    (
        magic,
        version,
        header_size,
        region_size,
        device_count,
        slot_count,
        device_size,
        slot_size,
        devices_offset,
        slots_offset,
        priority,
        util_switch,
        recent_kernel,
        slot_hw,
        last_kernel_s,
        generation,
        reclaimed,
    ) = h
    if magic == 0:  # the hook writes the magic last, after the rest of the header
        raise RegionNotReadyError("region header not written yet (being created)")
    if magic != MAGIC:
        raise RegionError(f"bad magic {magic:#x}: not a hami-rs region (HAMi-core's layout?)")
    if version != VERSION:
        raise RegionError(f"region layout version {version}, this reader knows {VERSION}")
    geometry = (
        header_size,
        region_size,
        device_count,
        slot_count,
        device_size,
        slot_size,
        devices_offset,
        slots_offset,
    )
    expected = (
        HEADER_SIZE,
        REGION_SIZE,
        DEVICES,
        SLOTS,
        DEVICE_SIZE,
        SLOT_SIZE,
        DEVICES_OFFSET,
        SLOTS_OFFSET,
    )
    if geometry != expected:
        raise RegionError(f"region geometry {geometry} differs from version 2 {expected}")
    if len(data) < (REGION_SIZE if processes else SLOTS_OFFSET):
        raise RegionError(f"region is {len(data)} bytes, expected {REGION_SIZE}")
    f = _DEVICES.unpack_from(data, DEVICES_OFFSET)
    devices = [DeviceUsage(i, f[j], f[j + 1], f[j + 2], f[j + 5], f[j + 6], f[j + 7], f[j + 8])
               for i, j in zip(range(DEVICES), range(0, DEVICES * 9, 9), strict=True)]  # fmt: skip
    slots = []
    for i in range(min(slot_hw, SLOTS) if processes else 0):
        base = SLOTS_OFFSET + i * SLOT_SIZE
        pid, state, _, host_pid = _SLOT_HEAD.unpack_from(data, base + 64)
        if state != SLOT_ACTIVE:
            continue
        (futex,) = struct.unpack_from("<I", data, base)
        alive = futex != 0 and not futex & FUTEX_OWNER_DIED
        used = _SLOT_USED.unpack_from(data, base + 128)
        ctx = _SLOT_USED.unpack_from(data, base + 384)
        spilled = _SLOT_USED.unpack_from(data, base + 640)
        slots.append(ProcessSlot(i, pid, alive, used, host_pid, ctx, spilled))
    boot_id = data[88:128].split(b"\0", 1)[0].decode("ascii", "replace")
    return RegionSnapshot(
        version,
        priority,
        util_switch,
        recent_kernel,
        last_kernel_s,
        generation,
        reclaimed,
        boot_id,
        tuple(devices),
        tuple(slots),
    )


def read_region(path: str | os.PathLike[str]) -> RegionSnapshot:
    """Snapshot the region file at path (read-only mapping, copied once)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise RegionError(f"{path} is empty")
        with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as m:
            return parse_region(bytes(m))


_STORES: dict[str, type[ctypes.c_int32] | type[ctypes.c_uint64]] = {
    "<i": ctypes.c_int32,
    "<Q": ctypes.c_uint64,
}


def _write_at(path: str | os.PathLike[str], offset: int, fmt: str, value: int) -> None:
    """One aligned store of a control field, after checking that the file is a whole region
    of ours (a foreign or truncated file is never written). ``struct.pack_into`` would write
    byte by byte, so a hook reading meanwhile could see a torn value; a ctypes store is the
    machine's single store, as the hook's own atomics."""
    with open(path, "r+b") as f:
        fd = f.fileno()
        if os.fstat(fd).st_size < REGION_SIZE:
            raise RegionError(f"{path} is shorter than a region; not written")
        parse_region(os.pread(fd, SLOTS_OFFSET, 0), processes=False)
        with mmap.mmap(fd, mmap.PAGESIZE) as m:  # the header and devices sit in the first page
            cell = _STORES[fmt].from_buffer(m, offset)
            cell.value = value
            del cell  # the mapping cannot close while ctypes holds it


def set_utilization_switch(path: str | os.PathLike[str], on: bool) -> None:
    """Under policy "default", 1 enforces the SM limit, 0 lets the container run unthrottled."""
    _write_at(path, OFF_UTIL_SWITCH, "<i", 1 if on else 0)


def set_recent_kernel(path: str | os.PathLike[str], value: int) -> None:
    """A negative value blocks the container's limited launches (priority scheduling)."""
    _write_at(path, OFF_RECENT_KERNEL, "<i", value)


def set_memory_limit(path: str | os.PathLike[str], device: int, limit_bytes: int) -> None:
    """Change a device's limit at run time; the hook checks it on the next allocation."""
    if not 0 <= device < DEVICES:
        raise ValueError(f"device {device} outside 0..{DEVICES - 1}")
    if not 0 <= limit_bytes < 2**64:
        raise ValueError(f"limit {limit_bytes} is not a u64")
    _write_at(path, DEVICES_OFFSET + device * DEVICE_SIZE, "<Q", limit_bytes)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m hami_common.shm.region PATH", file=sys.stderr)
        return 2
    snap = read_region(Path(argv[1]))
    print(json.dumps(asdict(snap)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
