"""The containers' folders on this node and the region in each.

The device plugin gives every container a fresh folder ``<hook>/vgpu/containers/<pod uid>_<
container>/`` (mounted at ``<hook>/vgpu`` inside), where the hook creates the container's region
``<id>.cache`` at its first CUDA call. A folder holds one region (the newest ``*.cache`` regular
file counts if a workload left others). What is found is reported as a `Container` with a
`state`: ``ok`` (a snapshot), ``initializing`` (no region yet, or one being created),
``invalid`` (not a whole version-1 region; the reason is logged once per file).

Folders of pods that left the node are reaped (`reap`) once they have not changed for a while:
a pod deleted and re-created keeps its UID only if it is the same pod, and the wait leaves a
container being set up by the plugin alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from hami_common.shm import RegionError, RegionNotReadyError, RegionSnapshot, read_snapshot

log = logging.getLogger(__name__)
OK, INITIALIZING, INVALID = "ok", "initializing", "invalid"
STATES = (OK, INITIALIZING, INVALID)


@dataclass(frozen=True)
class Container:
    pod_uid: str
    name: str
    folder: Path
    state: str
    region: Path | None = None
    snapshot: RegionSnapshot | None = None


def container_folders(root: Path) -> list[tuple[str, str, Path]]:
    """``(pod uid, container, folder)`` of every ``<uid>_<name>`` folder under `root` (names
    without ``_`` are not the plugin's and are skipped, as HAMi does)."""
    out = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    for entry in entries:
        uid, sep, name = entry.name.partition("_")
        if sep and uid and name and entry.is_dir(follow_symlinks=False):
            out.append((uid, name, Path(entry.path)))
    return out


def _newest_region(folder: Path) -> Path | None:
    best: tuple[float, str] | None = None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in entries:
        if not entry.name.endswith(".cache"):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and (best is None or st.st_mtime > best[0]):
            best = (st.st_mtime, entry.path)
    return Path(best[1]) if best else None


class Scanner:
    """Reads every container's region; logs each file's problem once (not once per scrape)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._reported: set[tuple[Path, str]] = set()

    def scan(self) -> list[Container]:
        return [self.read(uid, name, folder) for uid, name, folder in container_folders(self.root)]

    def read(self, uid: str, name: str, folder: Path) -> Container:
        region = _newest_region(folder)
        if region is None:
            return Container(uid, name, folder, INITIALIZING)
        try:
            return Container(uid, name, folder, OK, region, read_snapshot(region))
        except RegionNotReadyError:
            return Container(uid, name, folder, INITIALIZING, region)
        except (RegionError, OSError) as exc:
            key = (region, str(exc))
            if key not in self._reported:
                self._reported.add(key)
                log.warning("container %s of pod %s: region %s unreadable: %s", name, uid,
                            region, exc)  # fmt: skip
            return Container(uid, name, folder, INVALID, region)


def reap(
    folders: Iterable[tuple[str, str, Path]],
    live_uids: Collection[str],
    *,
    older_than: float,
    now: float,
    limits_dir: Path | None = None,
) -> list[Path]:
    """Remove the folders (and the plugin's limits files ``<limits_dir>/<uid>_<name>.conf``)
    of pods not in `live_uids` that have not changed since ``now - older_than``; returns what
    was removed. Only call this with the node's complete pod list."""
    removed = []
    for uid, name, folder in folders:
        if uid in live_uids:
            continue
        try:
            if now - folder.stat().st_mtime < older_than:
                continue
        except FileNotFoundError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if limits_dir is not None:
            (limits_dir / f"{uid}_{name}.conf").unlink(missing_ok=True)
        log.info("reaped %s: pod %s is no longer on this node", folder, uid)
        removed.append(folder)
    return removed
