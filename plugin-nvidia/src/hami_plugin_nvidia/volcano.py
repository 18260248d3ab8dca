"""The NVIDIA plugin as volcano's vGPU device plugin (``--scheduler volcano``).

What volcano-scheduler's ``deviceshare`` plugin (``VGPUEnable``) reads, as
Project-HAMi/volcano-vgpu-device-plugin writes it:

- the node registration ``volcano.sh/node-vgpu-register`` (`hami_rustcore`'s volcano codec);
- three resources: ``volcano.sh/vgpu-number`` (``split_count`` IDs per GPU, the one whose
  Allocate does the work), ``volcano.sh/vgpu-memory`` (one ID per memory unit of each GPU) and
  ``volcano.sh/vgpu-cores`` (100 x core scaling IDs per GPU); volcano takes a node only when all
  three are allocatable. A memory unit is ``memory_factor`` MiB (the plugin's
  ``--gpu-memory-factor``): kubelet handles one ID per unit, so a large GPU wants a factor.

The Allocate answer is the HAMi path's (`NvidiaPolicy.container_response`: the hook's env and
mounts, and the read-only limits file), with each device's memory converted from units to MiB.
The pod lookup and the lock are volcano's (`VolcanoAllocator`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import hami_rustcore
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.backend import Links, PhysicalDevice
from hami_common.deviceplugin.vendor import CapacityResource, ContainerContext
from hami_common.protocol import volcano
from hami_common.settings import SettingsError

from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.policy import NvidiaPolicy

KUBELET_ID_LIMIT = 60_000
"""Device IDs kubelet receives in one ListAndWatch: it dials plugins with gRPC's default 4 MiB
receive limit (volcano-vgpu-device-plugin's ``deviceEntryLimit``, with a margin)."""


class VolcanoPolicy(NvidiaPolicy):
    register_annotation = volcano.NODE_REGISTER

    def __init__(self, options: NvidiaOptions, *, memory_factor: int = 1, **kwargs: Any) -> None:
        """``kwargs``: `NvidiaPolicy`'s (hook path, lock folder, version, cache id)."""
        if memory_factor < 1:
            raise ValueError(f"memory factor {memory_factor} must be at least 1")
        super().__init__(
            dataclasses.replace(
                options, resource_name=volcano.RESOURCE_NUMBER, topology_score=False
            ),
            **kwargs,
        )
        self.memory_factor = memory_factor

    @property
    def socket_name(self) -> str:
        return "volcano-vgpu-number.sock"

    def node_devices(self, devices: Sequence[PhysicalDevice]) -> list[hami_rustcore.Device]:
        """HAMi's inventory with ``devmem`` in memory units (MiB / ``memory_factor``)."""
        out = super().node_devices(devices)
        if self.memory_factor == 1:
            return out
        return [
            hami_rustcore.Device(
                d.id,
                d.count,
                d.devmem // self.memory_factor,
                d.devcore,
                d.type,
                vendor=d.vendor,
                index=d.index,
                numa=d.numa,
                mode=d.mode,
                health=d.health,
            )
            for d in out
        ]

    def node_annotations(self, devices: Sequence[PhysicalDevice], links: Links) -> dict[str, str]:
        return {
            volcano.NODE_REGISTER: hami_rustcore.encode_volcano_node_devices(
                self.node_devices(devices)
            )
        }

    def memory_units(self, dev: PhysicalDevice) -> int:
        """The ``volcano.sh/vgpu-memory`` IDs of one GPU: its registered ``devmem``."""
        registered = self.node_devices([dev])
        return registered[0].devmem if registered else 0

    def check_memory_ids(self, devices: Sequence[PhysicalDevice]) -> None:
        """Raises `SettingsError` when kubelet could not receive the ``volcano.sh/vgpu-memory``
        IDs of these GPUs (volcano would then see no memory and skip the node), naming the
        smallest ``--gpu-memory-factor`` that fits."""
        total = sum(self.memory_units(d) for d in devices)
        if total <= KUBELET_ID_LIMIT:
            return
        need = -(-total * self.memory_factor // KUBELET_ID_LIMIT)
        raise SettingsError(
            [
                f"gpu_memory_factor (command line --gpu-memory-factor): {total} "
                f"{volcano.RESOURCE_MEMORY} IDs at factor {self.memory_factor} are more than "
                f"the {KUBELET_ID_LIMIT} kubelet receives; set --gpu-memory-factor {need} or more"
            ]
        )

    def core_units(self, dev: PhysicalDevice) -> int:
        return int(self.options.core_scaling * 100)

    def capacity_resources(self) -> Sequence[CapacityResource]:
        return (
            CapacityResource(
                volcano.RESOURCE_MEMORY, "volcano-vgpu-memory.sock", self.memory_units
            ),
            CapacityResource(volcano.RESOURCE_CORES, "volcano-vgpu-cores.sock", self.core_units),
        )

    def container_response(self, ctx: ContainerContext) -> pb.ContainerAllocateResponse:
        if self.memory_factor > 1:
            devices = [
                hami_rustcore.AllocDevice(
                    d.uuid, d.vendor, d.usedmem * self.memory_factor, d.usedcores
                )
                for d in ctx.devices
            ]
            ctx = dataclasses.replace(ctx, devices=devices)
        return super().container_response(ctx)
