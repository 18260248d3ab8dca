"""`read_snapshot`: what a node monitor meets in container folders it does not control."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hami_common.shm import region as r
from hami_common.shm.reader import read_snapshot
from hami_common.shm.testing import region_image, write_region


def test_reads_header_and_devices_and_on_request_the_slots(tmp_path: Path) -> None:
    path = write_region(
        tmp_path / "a.cache",
        region_image(devices={0: (1 << 30, 5, 30)}, slots={0: (99, 4, r.SLOT_ACTIVE, {0: 5})}),
    )
    snap = read_snapshot(path)
    assert snap.devices[0].limit_bytes == 1 << 30
    assert snap.processes == ()
    assert [p.pid for p in read_snapshot(path, processes=True).processes] == [4]


def test_empty_and_unformatted_files_are_not_ready(tmp_path: Path) -> None:
    (tmp_path / "empty.cache").write_bytes(b"")
    (tmp_path / "zero.cache").write_bytes(bytes(r.REGION_SIZE))
    for name in ("empty.cache", "zero.cache"):
        with pytest.raises(r.RegionNotReadyError):
            read_snapshot(tmp_path / name)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(region_image())[:4096], "4096 bytes, a region is 919808"),
        (struct.pack("<I", 19920718) + bytes(2008952 - 4), "bad magic"),  # HAMi-core v1
        (bytes(region_image(version=1)), "version 1"),
    ],
    ids=["truncated", "hami-core-region", "other-version"],
)
def test_foreign_or_truncated_files_are_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "x.cache"
    path.write_bytes(content)
    with pytest.raises(r.RegionError, match=message):
        read_snapshot(path)


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    # a container could point its region at any host file; the monitor reads none of them
    target = write_region(tmp_path / "real.cache", region_image())
    (tmp_path / "link.cache").symlink_to(target)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        read_snapshot(tmp_path / "link.cache")


def test_truncation_while_a_reader_runs_never_kills_it(tmp_path: Path) -> None:
    """A process that maps a file and reads it after the file shrank dies of SIGBUS; the
    reader reads with pread, so a container that truncates its region in a loop only makes
    its own region unreadable."""
    path = write_region(tmp_path / "t.cache", region_image(devices={0: (10, 5, 0)}))
    script = (
        "import sys\n"
        "from hami_common.shm import RegionError\n"
        "from hami_common.shm.reader import read_snapshot\n"
        "ok = bad = 0\n"
        "for _ in range(3000):\n"
        "    try:\n"
        "        read_snapshot(sys.argv[1]); ok += 1\n"
        "    except (RegionError, OSError):\n"
        "        bad += 1\n"
        "print(ok, bad)\n"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True
    )
    full = bytes(region_image(devices={0: (10, 5, 0)}))
    while reader.poll() is None:
        fd = os.open(path, os.O_RDWR)
        os.ftruncate(fd, 100)
        os.pwrite(fd, full, 0)
        os.close(fd)
    out, _ = reader.communicate()
    assert reader.returncode == 0, f"the reader died: {reader.returncode}"
    ok, bad = map(int, out.split())
    assert ok + bad == 3000
