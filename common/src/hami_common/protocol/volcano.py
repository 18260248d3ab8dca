"""volcano's vGPU protocol: its annotation keys, resource names and node lock.

volcano-scheduler's ``deviceshare`` plugin (``VGPUEnable``) reads a node's vGPUs from
``volcano.sh/node-vgpu-register`` and its allocatable ``volcano.sh/vgpu-*`` resources, and at
allocation (volcano-sh/volcano ``pkg/scheduler/api/devices/nvidia/vgpu/device_info.go``
``Allocate``):

1. with ``deviceshare.NodeLockEnable``, takes the node lock: the node annotation ``hamivgpu``
   (volcano's ``DeviceName``) = the time in RFC 3339, no owner; refused while a lock younger than
   5 minutes is there, an older one is replaced (``pkg/scheduler/plugins/util/nodelock``);
2. writes the pod annotations ``volcano.sh/vgpu-node``, ``vgpu-time`` and ``bind-time`` (Unix
   seconds), ``vgpu-ids-new`` and ``devices-to-allocate`` (the same device list), and
   ``bind-phase: allocating``: volcano 1.9 patches the pod before binding, later versions carry
   them on the Binding, whose annotations the API server copies onto the pod;
3. binds the pod.

The device plugin (Project-HAMi/volcano-vgpu-device-plugin ``pkg/plugin/server.go``
``Allocate``, ``pkg/util/util.go``) finds the pod by ``vgpu-node`` and the device count, erases
each container's entry from ``devices-to-allocate`` as it allocates it, and at the end (or on
failure) sets ``bind-phase`` success (failed), ``vgpu-time`` to 2^64-1, and deletes the lock.

``volcano.sh/mutex.lock`` is declared in the device plugin (``NodeLockTime``) but nothing reads
or writes it: the lock both sides use is ``hamivgpu``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hami_common.k8s import NODES, Conflict, KubeClient
from hami_common.protocol.nodeannotation import (
    CAS_ATTEMPTS,
    format_time,
    parse_time,
    read,
    remove,
    swap,
)

Json = dict[str, Any]

# Node.
NODE_REGISTER = "volcano.sh/node-vgpu-register"
NODE_LOCK = "hamivgpu"
LOCK_EXPIRY = timedelta(minutes=5)

# Pod, written by volcano-scheduler at allocation.
VGPU_NODE = "volcano.sh/vgpu-node"
VGPU_TIME = "volcano.sh/vgpu-time"
VGPU_IDS = "volcano.sh/vgpu-ids-new"
DEVICES_TO_ALLOCATE = "volcano.sh/devices-to-allocate"
BIND_TIME = "volcano.sh/bind-time"
BIND_PHASE = "volcano.sh/bind-phase"
PHASE_ALLOCATING = "allocating"
PHASE_SUCCESS = "success"
PHASE_FAILED = "failed"
DONE_TIME = str(2**64 - 1)
"""``vgpu-time`` once the plugin is done with a pod (Go's ``math.MaxUint64``): last in line."""
DEVICE_TYPE = "NVIDIA"
"""The ``Type`` of every device in volcano's pod lists (the request's type, not the model)."""

# Resources (volcano ``pkg/scheduler/api/devices/config/vgpu.go``).
RESOURCE_NUMBER = "volcano.sh/vgpu-number"
RESOURCE_MEMORY = "volcano.sh/vgpu-memory"
RESOURCE_CORES = "volcano.sh/vgpu-cores"
RESOURCE_MEMORY_PERCENTAGE = "volcano.sh/vgpu-memory-percentage"
REQUEST_RESOURCES = (RESOURCE_NUMBER, RESOURCE_MEMORY)
"""A container has an entry in volcano's device list iff its limits name one of these."""


class NodeLocked(Exception):  # noqa: N818 (volcano's word)
    """The node's ``hamivgpu`` lock is younger than 5 minutes."""


format_lock = format_time


def parse_lock(value: str) -> datetime | None:
    """The lock's time; ``None`` when it is not RFC 3339 (volcano then refuses the lock)."""
    taken = parse_time(value)
    return taken if taken is not None and taken.tzinfo is not None else None


async def take_lock(client: KubeClient, node: str, *, now: datetime | None = None) -> None:
    """volcano-scheduler's ``LockNode(node, "hamivgpu")``, as a compare-and-swap: raises
    `NodeLocked` while a lock younger than `LOCK_EXPIRY` (or one that does not parse) is there."""
    for _ in range(CAS_ATTEMPTS):
        when = now or datetime.now(UTC)
        value, rv = read(await client.get(NODES, node, metadata_only=True), NODE_LOCK)
        if value is not None:
            taken = parse_lock(value)
            if taken is None or when - taken <= LOCK_EXPIRY:
                raise NodeLocked(f"node {node} has been locked within 5 minutes ({value!r})")
        try:
            await swap(client, node, NODE_LOCK, rv, format_lock(when))
            return
        except Conflict:
            continue
    raise NodeLocked(f"node {node}: the node changed on every attempt to lock it")


async def release_lock(client: KubeClient, node: str, *, known: Json | None = None) -> bool:
    """The plugin's ``ReleaseNodeLock(node, "hamivgpu")``: deletes the lock if there is one (it
    names no owner). Returns whether it deleted one. ``known``: a recent read of the node for
    the first attempt."""
    return await remove(client, node, NODE_LOCK, known=known)
