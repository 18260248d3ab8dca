"""Cambricon's `VendorPolicy`: HAMi's allocation protocol for MLUs (reference
``hami-vendors.md`` §2), with the sMLU instances Cambricon's ``dynamic-smlu`` plugin makes.

Registration: no annotation (HAMi synthesizes the MLUs from node capacity); the plugin advertises
the sMLU core resource (100 per MLU) and memory resource (one per ``memory_unit_mib``) so that
capacity carries them, beside the count resource it serves.

Allocate, per container: each MLU of the container's entry (``<node>-cambricon-mlu-<i>``, the
i-th MLU) becomes an sMLU instance of the entry's cores and memory; the container gets the MLU's
device nodes and the instance's. With the allocation the pod gets ``CAMBRICON_DSMLU_ASSIGNED:
"true"`` and ``CAMBRICON_DSMLU_PROFILE_INSTANCE: <profile>_<handle>_<slot>_<instance>``; then
``cambricon.com/dsmlu.lock`` is removed. HAMi v2.10 writes ``CAMBRICON_DSMLU_ASSIGNED`` while
Cambricon's plugin reads ``CAMBRICON_DSMLU_ASSIGHED``, so neither finds the other's pods; this
plugin finds pods by HAMi's protocol whichever spelling they carry, and sets the flag in HAMi's
spelling and in the other one when the pod has it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hami_rustcore
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.backend import Links, PhysicalDevice
from hami_common.deviceplugin.vendor import CapacityResource, ContainerContext
from hami_common.k8s import KubeClient
from hami_common.protocol import mlulock
from hami_common.settings import CambriconConfig

from hami_plugin_cambricon.devices import SmluBackend, SmluError, SmluInstance, slots

log = logging.getLogger(__name__)

ASSIGNED = "CAMBRICON_DSMLU_ASSIGNED"
ASSIGNED_LEGACY = "CAMBRICON_DSMLU_ASSIGHED"  # HAMi before v2.10, and Cambricon's plugin
PROFILE = "CAMBRICON_DSMLU_PROFILE"
PROFILE_INSTANCE = "CAMBRICON_DSMLU_PROFILE_INSTANCE"
_HAMI_ID = re.compile(r"-cambricon-mlu-(\d+)$")


class CambriconPolicy:
    vendor = "MLU"
    numa_topology = False
    preferred_allocation = False
    register_annotation = ""

    def __init__(
        self,
        names: CambriconConfig,
        backend: SmluBackend,
        devices: Sequence[PhysicalDevice],
        *,
        split_count: int = 100,
        memory_unit_mib: int = 256,
        dev_root: Path = Path("/dev"),
    ) -> None:
        self.names = names
        self.backend = backend
        self.resource_name = names.resource_count_name
        self.split_count = split_count
        self.memory_unit_mib = memory_unit_mib
        self.dev_root = dev_root
        self._slots = slots(devices)
        # per (pod UID, container, slot): an Allocate retried after a write conflict reuses
        # the instance it made, never makes a second
        self._made: dict[tuple[str, int, int], SmluInstance] = {}

    @property
    def socket_name(self) -> str:
        return "hami-cambricon-vmlu.sock"

    # -- registration -------------------------------------------------------------------------

    def capacity_resources(self) -> Sequence[CapacityResource]:
        unit = self.memory_unit_mib
        return (
            CapacityResource(self.names.resource_core_name, "hami-cambricon-vcore.sock",
                             lambda _dev: 100),
            CapacityResource(self.names.resource_memory_name, "hami-cambricon-vmemory.sock",
                             lambda dev: dev.memory_mib // unit),
        )  # fmt: skip

    def node_devices(self, devices: Sequence[PhysicalDevice]) -> list[hami_rustcore.Device]:
        """The MLUs as HAMi synthesizes them from the capacity this plugin advertises."""
        healthy = [d for d in devices if d.healthy]
        memory = sum(d.memory_mib // self.memory_unit_mib for d in healthy)
        return hami_rustcore.cambricon_devices("node", 100 * len(healthy), memory)

    def node_annotations(self, devices: Sequence[PhysicalDevice], links: Links) -> dict[str, str]:
        return {}  # no register annotation: HAMi reads node capacity

    # -- Allocate -----------------------------------------------------------------------------

    def _slot(self, uuid: str) -> int:
        match = _HAMI_ID.search(uuid)
        position = int(match.group(1)) if match else -1
        if not 0 <= position < len(self._slots):
            raise ValueError(
                f"MLU {uuid} is not one of this node's {len(self._slots)} MLUs "
                "(<node>-cambricon-mlu-<0..n-1>)"
            )
        return self._slots[position]

    def container_response(self, ctx: ContainerContext) -> pb.ContainerAllocateResponse:
        if not ctx.devices:
            raise ValueError(f"container {ctx.container_name!r}: no MLU to allocate")
        resp = pb.ContainerAllocateResponse()
        for dev in ctx.devices:
            slot = self._slot(dev.uuid)
            if dev.usedcores <= 0 or dev.usedmem <= 0:
                raise ValueError(
                    f"container {ctx.container_name!r}: an sMLU needs a share of the cores and "
                    f"of the memory, got {dev.usedcores}% and {dev.usedmem} MiB; set "
                    f"{self.names.resource_core_name} and {self.names.resource_memory_name} "
                    "above 0"
                )
            key = (ctx.pod_uid, ctx.index, slot)
            instance = self._made.get(key)
            if instance is None:
                try:
                    instance = self.backend.create_smlu(slot, dev.usedcores, dev.usedmem)
                except SmluError as exc:
                    raise ValueError(str(exc)) from None
                self._made[key] = instance
            for path in (f"cambricon_dev{slot}", f"cambricon_ipcm{slot}"):
                host = self.dev_root / path
                if path.startswith("cambricon_dev") or host.exists():
                    resp.devices.add(container_path=f"/dev/{path}", host_path=str(host),
                                     permissions="rw")  # fmt: skip
            resp.devices.add(container_path=instance.dev_node, host_path=instance.dev_node,
                             permissions="rw")  # fmt: skip
        return resp

    def allocated_annotations(
        self, pod: dict[str, Any], given: Sequence[ContainerContext]
    ) -> dict[str, str]:
        meta = pod.get("metadata") or {}
        ann = meta.get("annotations") or {}
        uid = str(meta.get("uid", ""))
        out = {ASSIGNED: "true"}
        if ASSIGNED_LEGACY in ann:
            out[ASSIGNED_LEGACY] = "true"
        made = [i for (owner, _, _), i in sorted(self._made.items(), key=lambda kv: kv[0])
                if owner == uid]  # fmt: skip
        if made and PROFILE_INSTANCE not in ann:
            out[PROFILE_INSTANCE] = made[0].annotation
        return out

    async def release_locks(
        self, client: KubeClient, node: str, pod: dict[str, Any], *, done: bool
    ) -> None:
        """Once the pod's MLUs are all allocated (or failed), removes
        ``cambricon.com/dsmlu.lock``, as Cambricon's plugin does once it allocated: not after
        the first of several MLU containers."""
        if not done:
            return
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        for key in [k for k in self._made if k[0] == uid]:
            del self._made[key]
        await mlulock.release(client, node)
