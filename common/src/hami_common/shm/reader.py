"""Reading regions as a node monitor must: from files that containers can write.

A container's folder is mounted read-write into the container, so the region file in it may be
truncated, replaced or filled with junk by the workload at any moment, and the hook rewrites
its counters while we read. `read_snapshot` therefore never maps the file for reading (a mapped
file truncated under the reader kills it with SIGBUS): it checks the size and ``pread``s the
header and the devices (2.3 KB; the process slots only when asked), so the worst a container
can do is make its own region unreadable. A file whose header is not written yet (the hook
creates, sizes, then formats it) is `RegionNotReadyError`, not an error.
"""

from __future__ import annotations

import os
from pathlib import Path

from hami_common.shm.region import (
    REGION_SIZE,
    SLOTS_OFFSET,
    RegionError,
    RegionNotReadyError,
    RegionSnapshot,
    parse_region,
)


def read_snapshot(path: str | os.PathLike[str], *, processes: bool = False) -> RegionSnapshot:
    """The region at `path`: header and devices (and the registered process slots with
    ``processes``). Raises `RegionNotReadyError` for a file being created, `RegionError` for a file
    that is not a whole version-1 region, `OSError` when it cannot be read (gone meanwhile)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise RegionNotReadyError(f"{path} is empty (being created)")
        if size < REGION_SIZE:
            raise RegionError(f"{Path(path).name} is {size} bytes, a region is {REGION_SIZE}")
        data = os.pread(fd, REGION_SIZE if processes else SLOTS_OFFSET, 0)
    finally:
        os.close(fd)
    return parse_region(data, processes=processes)
