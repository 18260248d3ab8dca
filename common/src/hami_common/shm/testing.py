"""Region images built from the documented version-2 layout (hook/README.md), for the tests and
benchmarks of the readers; the real hook writes the same bytes (hook/tests checks both)."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

from hami_common.shm import region as r

BOOT_ID = b"6f1c2d9e-0000-4000-8000-000000000001"


def region_image(
    devices: Mapping[int, tuple[int, int, int]] | None = None,
    slots: Mapping[int, tuple[int, int, int, Mapping[int, int]]] | None = None,
    *,
    magic: int = r.MAGIC,
    version: int = r.VERSION,
    priority: int = 1,
    util_switch: int = 1,
    recent_kernel: int = 2,
    last_kernel_s: int = 1_700_000_000,
    busy_ns: Mapping[int, int] | None = None,
    ctx_spilled: Mapping[int, tuple[int, int]] | None = None,
) -> bytearray:
    """devices: index -> (limit, used, sm%); slots: index -> (futex word, pid, state, used per
    device); busy_ns: index -> the limiter's charged GPU time; ctx_spilled: index -> (bytes of
    contexts and modules, bytes spilled to host memory), both parts of used."""
    buf = bytearray(r.REGION_SIZE)
    hw = max(slots) + 1 if slots else 0
    struct.pack_into(
        "<QIIQIIIIIIiiiIQQQ", buf, 0, magic, version, r.HEADER_SIZE, r.REGION_SIZE,
        r.DEVICES, r.SLOTS, r.DEVICE_SIZE, r.SLOT_SIZE, r.DEVICES_OFFSET, r.SLOTS_OFFSET,
        priority, util_switch, recent_kernel, hw, last_kernel_s, 7, 3,
    )  # fmt: skip
    buf[88 : 88 + len(BOOT_ID)] = BOOT_ID
    for i, (limit, used, sm) in (devices or {}).items():
        struct.pack_into("<QQI", buf, r.DEVICES_OFFSET + i * r.DEVICE_SIZE, limit, used, sm)
    for i, busy in (busy_ns or {}).items():
        struct.pack_into("<Q", buf, r.DEVICES_OFFSET + i * r.DEVICE_SIZE + 32, busy)
    for i, (ctx, spilled) in (ctx_spilled or {}).items():
        struct.pack_into("<QQ", buf, r.DEVICES_OFFSET + i * r.DEVICE_SIZE + 48, ctx, spilled)
    for i, (futex, pid, state, used_by_dev) in (slots or {}).items():
        base = r.SLOTS_OFFSET + i * r.SLOT_SIZE
        struct.pack_into("<I", buf, base, futex)
        struct.pack_into("<iI", buf, base + 64, pid, state)
        for dev, used in used_by_dev.items():
            struct.pack_into("<Q", buf, base + 128 + dev * 8, used)
    return buf


def write_region(path: Path, image: bytes | bytearray) -> Path:
    """Write a region file (its folder created), replacing any file there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(image))
    return path
