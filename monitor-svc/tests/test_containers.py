"""Container folders: states of their regions, and reaping the folders of pods gone."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from hami_common.shm import region as r
from hami_monitor.containers import INITIALIZING, INVALID, OK, Scanner, container_folders, reap
from hami_monitor.testing import container_region


def test_folders_are_pod_uid_and_container(tmp_path: Path) -> None:
    (tmp_path / "uid-1_main").mkdir()
    (tmp_path / "no-underscore").mkdir()
    (tmp_path / "uid-2_side").write_text("a file, not a folder")
    assert [(u, n) for u, n, _ in container_folders(tmp_path)] == [("uid-1", "main")]
    assert container_folders(tmp_path / "missing") == []


def test_states(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    container_region(tmp_path, "u1", "ok", devices={0: (1 << 30, 5, 30)})
    (tmp_path / "u2_fresh").mkdir()  # the plugin made it, the hook has not run yet
    (tmp_path / "u3_creating").mkdir()
    (tmp_path / "u3_creating" / "r.cache").write_bytes(bytes(r.REGION_SIZE))  # not formatted
    (tmp_path / "u4_junk").mkdir()
    (tmp_path / "u4_junk" / "r.cache").write_bytes(b"\x4e\xfa\x2f\x01" * 1000)
    scanner = Scanner(tmp_path)
    with caplog.at_level(logging.WARNING):
        states = {c.name: c.state for c in scanner.scan()}
        scanner.scan()
    assert states == {"ok": OK, "fresh": INITIALIZING, "creating": INITIALIZING, "junk": INVALID}
    assert len([m for m in caplog.messages if "unreadable" in m]) == 1  # once, not per scrape


def test_the_newest_region_of_a_folder_counts(tmp_path: Path) -> None:
    old = container_region(tmp_path, "u1", "main", devices={0: (1, 1, 0)})
    new = old.with_name("r2.cache")
    new.write_bytes(old.read_bytes().replace(b"\x01", b"\x01"))
    os.utime(old, (time.time() - 100, time.time() - 100))
    [c] = Scanner(tmp_path).scan()
    assert c.region == new


def test_reaps_only_gone_pods_after_the_wait(tmp_path: Path) -> None:
    root, limits = tmp_path / "containers", tmp_path / "limits"
    limits.mkdir()
    for uid in ("live", "gone", "recent"):
        container_region(root, uid, "main")
        (limits / f"{uid}_main.conf").write_text("x")
    old = time.time() - 600
    for uid in ("live", "gone"):
        os.utime(root / f"{uid}_main", (old, old))
    removed = reap(container_folders(root), {"live"}, older_than=300, now=time.time(),
                   limits_dir=limits)  # fmt: skip
    assert [p.name for p in removed] == ["gone_main"]
    assert sorted(p.name for p in root.iterdir()) == ["live_main", "recent_main"]
    assert sorted(p.name for p in limits.iterdir()) == ["live_main.conf", "recent_main.conf"]
