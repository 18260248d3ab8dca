"""The region reader against images built from the documented version-2 layout."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hami_common.shm import region as r
from hypothesis import given
from hypothesis import strategies as st


def image(
    devices: dict[int, tuple[int, int, int]] | None = None,
    slots: dict[int, tuple[int, int, int, dict[int, int]]] | None = None,
    *,
    magic: int = r.MAGIC,
    version: int = r.VERSION,
    priority: int = 1,
) -> bytearray:
    """devices: index -> (limit, used, sm%); slots: index -> (futex word, pid, state, used)."""
    buf = bytearray(r.REGION_SIZE)
    hw = max(slots) + 1 if slots else 0
    struct.pack_into(
        "<QIIQIIIIIIiiiIQQQ", buf, 0, magic, version, r.HEADER_SIZE, r.REGION_SIZE,
        r.DEVICES, r.SLOTS, r.DEVICE_SIZE, r.SLOT_SIZE, r.DEVICES_OFFSET, r.SLOTS_OFFSET,
        priority, 1, 2, hw, 1_700_000_000, 7, 3,
    )  # fmt: skip
    buf[88:124] = b"6f1c2d9e-0000-4000-8000-000000000001"
    for i, (limit, used, sm) in (devices or {}).items():
        struct.pack_into("<QQI", buf, r.DEVICES_OFFSET + i * r.DEVICE_SIZE, limit, used, sm)
    for i, (futex, pid, state, used_by_dev) in (slots or {}).items():
        base = r.SLOTS_OFFSET + i * r.SLOT_SIZE
        struct.pack_into("<I", buf, base, futex)
        struct.pack_into("<iI", buf, base + 64, pid, state)
        for dev, used in used_by_dev.items():
            struct.pack_into("<Q", buf, base + 128 + dev * 8, used)
    return buf


def test_layout_constants_match_region_h() -> None:
    # region.h: 256-byte header, 32 x 64-byte devices, 1024 x 896-byte slots.
    assert (r.DEVICES_OFFSET, r.SLOTS_OFFSET, r.REGION_SIZE) == (256, 2304, 919_808)
    assert struct.pack("<Q", r.MAGIC) == b"UHAMISR1"


def test_parses_devices_and_live_and_dead_processes() -> None:
    mib = 1 << 20
    img = image(
        devices={0: (1024 * mib, 600 * mib, 30), 3: (0, 5 * mib, 0)},
        slots={
            0: (1234, 10, r.SLOT_ACTIVE, {0: 400 * mib}),
            1: (r.FUTEX_OWNER_DIED | 1240, 11, r.SLOT_ACTIVE, {0: 200 * mib}),
            2: (0, 0, 0, {}),  # free slot: not listed
        },
    )
    snap = r.parse_region(bytes(img))
    assert (snap.version, snap.priority, snap.utilization_switch) == (2, 1, 1)
    assert (snap.recent_kernel, snap.generation, snap.reclaimed) == (2, 7, 3)
    assert snap.boot_id == "6f1c2d9e-0000-4000-8000-000000000001"
    assert snap.devices[0] == r.DeviceUsage(0, 1024 * mib, 600 * mib, 30, 0, 0)
    assert [d.index for d in snap.active_devices()] == [0, 3]
    assert [(p.pid, p.alive) for p in snap.processes] == [(10, True), (11, False)]
    assert snap.processes[1].used_bytes[0] == 200 * mib


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: struct.pack_into("<Q", b, 0, 19920718), "bad magic"),
        (lambda b: struct.pack_into("<I", b, 8, 1), "version 1"),
        (lambda b: struct.pack_into("<I", b, 24, 16), "geometry"),
    ],
)
def test_refuses_other_layouts(mutate: object, message: str) -> None:
    img = image()
    mutate(img)  # type: ignore[operator]
    with pytest.raises(r.RegionError, match=message):
        r.parse_region(bytes(img))


def test_refuses_truncated_images() -> None:
    with pytest.raises(r.RegionError, match="shorter than its header"):
        r.parse_region(b"\0" * 10)
    with pytest.raises(r.RegionError, match="expected 919808"):
        r.parse_region(bytes(image())[:4096])


def test_read_and_control_writes_on_a_file(tmp_path: Path) -> None:
    path = tmp_path / "ctr.shm"
    path.write_bytes(bytes(image(devices={0: (1 << 30, 0, 50)})))
    r.set_utilization_switch(path, False)
    r.set_recent_kernel(path, -1)
    r.set_memory_limit(path, 0, 256 << 20)
    snap = r.read_region(path)
    assert (snap.utilization_switch, snap.recent_kernel) == (0, -1)
    assert snap.devices[0].limit_bytes == 256 << 20
    assert snap.devices[0].sm_limit_pct == 50  # neighbours untouched
    with pytest.raises(ValueError, match="outside"):
        r.set_memory_limit(path, 32, 1)


def test_control_writes_refuse_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "hami-core.cache"
    path.write_bytes(b"\x4e\xfa\x2f\x01" + b"\0" * (r.REGION_SIZE - 4))
    with pytest.raises(r.RegionError):
        r.set_utilization_switch(path, True)
    assert path.read_bytes()[52:56] == b"\0\0\0\0"


def test_cli_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ctr.shm"
    path.write_bytes(bytes(image(devices={1: (5, 4, 0)})))
    assert r.main(["region", str(path)]) == 0
    assert '"limit_bytes": 5' in capsys.readouterr().out


@given(st.binary(max_size=4096))
def test_random_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(r.RegionError):
        r.parse_region(data)


@given(st.integers(0, r.REGION_SIZE - 1), st.binary(min_size=1, max_size=512))
def test_corrupted_regions_parse_or_raise_region_error(offset: int, junk: bytes) -> None:
    img = image(devices={0: (1, 1, 1)}, slots={0: (5, 5, r.SLOT_ACTIVE, {})})
    img[offset : offset + len(junk)] = junk[: r.REGION_SIZE - offset]
    with contextlib.suppress(r.RegionError):
        snap = r.parse_region(bytes(img))
        assert len(snap.devices) == r.DEVICES
        assert len(snap.processes) <= r.SLOTS


@given(
    st.dictionaries(
        st.integers(0, r.DEVICES - 1),
        st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 100)),
        max_size=8,
    ),
    st.dictionaries(
        st.integers(0, 63),
        st.tuples(
            st.integers(0, 2**32 - 1),
            st.integers(1, 2**31 - 1),
            st.dictionaries(st.integers(0, r.DEVICES - 1), st.integers(0, 2**64 - 1)),
        ),
        max_size=8,
    ),
)
def test_decode_matches_what_was_encoded(
    devices: dict[int, tuple[int, int, int]], slots: dict[int, tuple[int, int, dict[int, int]]]
) -> None:
    img = image(devices, {i: (f, p, r.SLOT_ACTIVE, u) for i, (f, p, u) in slots.items()})
    snap = r.parse_region(bytes(img))
    for i, (limit, used, sm) in devices.items():
        d = snap.devices[i]
        assert (d.limit_bytes, d.used_bytes, d.sm_limit_pct) == (limit, used, sm)
    assert [p.index for p in snap.processes] == sorted(slots)
    for p in snap.processes:
        futex, pid, used_by_dev = slots[p.index]
        assert p.pid == pid
        assert p.alive == (futex != 0 and not futex & r.FUTEX_OWNER_DIED)
        assert all(p.used_bytes[d] == u for d, u in used_by_dev.items())


def test_context_spill_and_host_pid_fields() -> None:
    """What the hook adds from the driver's view: per device and per process."""
    mib = 1 << 20
    slots = {0: (77, 12, r.SLOT_ACTIVE, {1: 900 * mib})}
    img = image(devices={1: (2048 * mib, 900 * mib, 0)}, slots=slots)
    struct.pack_into("<QQ", img, r.DEVICES_OFFSET + r.DEVICE_SIZE + 48, 300 * mib, 200 * mib)
    struct.pack_into("<i", img, r.SLOTS_OFFSET + 80, 4242)
    struct.pack_into("<Q", img, r.SLOTS_OFFSET + 384 + 8, 300 * mib)
    struct.pack_into("<Q", img, r.SLOTS_OFFSET + 640 + 8, 200 * mib)
    snap = r.parse_region(bytes(img))
    assert (snap.devices[1].ctx_bytes, snap.devices[1].spilled_bytes) == (300 * mib, 200 * mib)
    p = snap.processes[0]
    assert (p.host_pid, p.ctx_bytes[1], p.spilled_bytes[1]) == (4242, 300 * mib, 200 * mib)


def test_header_not_written_yet_is_not_ready() -> None:
    # the hook sizes the file, then formats it and writes the magic last
    with pytest.raises(r.RegionNotReadyError):
        r.parse_region(bytes(r.REGION_SIZE))


def test_header_being_formatted_is_not_ready() -> None:
    # the hook writes the geometry, formats 1024 slots, then the magic: a reader in between
    # sees a header without its magic (a monitor scanning a starting container did)
    img = image(magic=0)
    with pytest.raises(r.RegionNotReadyError):
        r.parse_region(bytes(img))


def test_devices_only_needs_no_slots() -> None:
    img = image(devices={2: (8, 4, 10)}, slots={0: (1234, 10, r.SLOT_ACTIVE, {2: 4})})
    snap = r.parse_region(bytes(img[: r.SLOTS_OFFSET]), processes=False)
    assert snap.devices[2].used_bytes == 4
    assert snap.processes == ()
