"""The NVIDIA devices as a DRA driver publishes them, and what a claim consumed of one.

Each healthy device allows several allocations and has three capacities:

- ``memory``: the device memory (scaled by ``deviceMemoryScaling``), in MiB steps; a claim that
  does not ask for memory takes all of it (an exclusive GPU, as ``nvidia.com/gpu: 1`` alone);
- ``cores``: 0-100 (scaled by ``deviceCoreScaling``); a claim that does not ask takes 0, HAMi's
  "no core limit";
- ``shares``: HAMi's ``deviceSplitCount``; every claim takes one, so at most that many claims
  share a device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hami_rustcore
from hami_common.deviceplugin.backend import PhysicalDevice

from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.policy import hami_type

Json = dict[str, Any]
DRIVER_NAME = "gpu.hami.io"
CDI_KIND = "hami.io/gpu"
_MIB = 1 << 20


def device_name(dev: PhysicalDevice) -> str:
    return f"gpu-{dev.index}"


@dataclass(frozen=True)
class Capacity:
    memory_mib: int
    cores: int


def capacity(dev: PhysicalDevice, options: NvidiaOptions) -> Capacity:
    memory = dev.memory_mib or options.preconfigured_memory_mib
    return Capacity(int(memory * options.memory_scaling), int(options.core_scaling * 100))


def slice_devices(devices: Sequence[PhysicalDevice], options: NvidiaOptions) -> list[Json]:
    """The ResourceSlice devices: healthy devices with a known memory size, in index order."""
    out: list[Json] = []
    for dev in devices:
        cap = capacity(dev, options)
        if not dev.healthy or cap.memory_mib <= 0:
            continue
        memory = f"{cap.memory_mib}Mi"
        out.append(
            {
                "name": device_name(dev),
                "allowMultipleAllocations": True,
                "attributes": {
                    "uuid": {"string": dev.uuid},
                    "type": {"string": hami_type(dev.model)},
                    "index": {"int": dev.index},
                    "numa": {"int": dev.numa},
                },
                "capacity": {
                    "memory": {
                        "value": memory,
                        "requestPolicy": {
                            "default": memory,
                            "validRange": {"min": "1Mi", "step": "1Mi"},
                        },
                    },
                    "cores": {
                        "value": str(cap.cores),
                        "requestPolicy": {
                            "default": "0",
                            "validRange": {"min": "0", "max": str(cap.cores), "step": "1"},
                        },
                    },
                    "shares": {
                        "value": str(options.split_count),
                        "requestPolicy": {"default": "1", "validValues": ["1"]},
                    },
                },
            }
        )
    return out


def consumed(values: Mapping[str, str], full: Capacity, what: str) -> Capacity:
    """A claim's ``consumedCapacity`` of one device in MiB and percent; without any (a device
    allocated whole), the whole memory and no core limit. Raises `ValueError` naming ``what``
    when a quantity is not one."""
    if not values:
        return Capacity(full.memory_mib, 0)
    try:
        memory = hami_rustcore.quantity_value(values.get("memory", f"{full.memory_mib}Mi"))
        cores = hami_rustcore.quantity_value(values.get("cores", "0"))
    except hami_rustcore.DecodeError as exc:
        raise ValueError(f"{what}: consumedCapacity {dict(values)}: {exc}") from None
    return Capacity(-(-memory // _MIB), cores)
