"""Readers of the per-container shared region written by the in-container hook (hook/)."""

from hami_common.shm.reader import read_snapshot
from hami_common.shm.region import (
    DeviceUsage,
    ProcessSlot,
    RegionError,
    RegionNotReadyError,
    RegionSnapshot,
    parse_region,
    read_region,
    set_memory_limit,
    set_recent_kernel,
    set_utilization_switch,
)

__all__ = [
    "DeviceUsage",
    "ProcessSlot",
    "RegionError",
    "RegionNotReadyError",
    "RegionSnapshot",
    "parse_region",
    "read_region",
    "read_snapshot",
    "set_memory_limit",
    "set_recent_kernel",
    "set_utilization_switch",
]
