"""The Rust core's vendor table from HAMi's device config, one for every service.

The webhook (`hami_rustcore.RequestModel`) and the extender (`hami_rustcore.Cluster`) build their
request model from this same table, so a pod is read the same way at admission and at fit.
"""

from __future__ import annotations

from hami_common.settings.device_config import AscendChipConfig, DeviceConfig

VendorValue = str | int | bool | list[dict[str, str | int]]
VendorTable = dict[str, dict[str, VendorValue]]


def ascend_entry(chip: AscendChipConfig, soft_default: bool) -> dict[str, VendorValue]:
    """One Ascend chip as the core takes it (``kind: ascend``, keyed by its common word)."""
    return {
        "kind": "ascend",
        "resource_count": chip.resource_name,
        "resource_memory": chip.resource_memory_name,
        "resource_cores": chip.resource_core_name,
        "memory_factor": max(chip.memory_factor, 1),
        "memory_allocatable": chip.memory_allocatable,
        "memory_capacity": max(chip.memory_capacity, chip.memory_allocatable),
        "super_pod": chip.super_pod,
        "soft_default": soft_default,
        "templates": [
            {"name": t.name, "memory": t.memory, "ai_core": t.ai_core, "ai_cpu": t.ai_cpu}
            for t in chip.templates
        ],
    }


def core_vendor_table(config: DeviceConfig, *, enable_ascend: bool = False) -> VendorTable:
    """Resource names and request defaults per vendor key, as the core's ``vendors=`` takes them.

    NVIDIA's come from the ``nvidia:`` section (``memoryFactor`` 0 means no scaling, as 1 does;
    ``defaultGPUNum`` is the count admission adds to a container that gives only memory or
    cores), Cambricon's names from ``cambricon:`` (its memory factor, 256, and defaults are
    fixed by HAMi). With ``enable_ascend`` (HAMi's ``--enable-ascend``), one Ascend vendor per
    chip of ``vnpus``, keyed by its ``commonWord``.
    """
    nv = config.nvidia
    mlu = config.cambricon
    table: VendorTable = {
        "NVIDIA": {
            "resource_count": nv.resource_count_name,
            "resource_memory": nv.resource_memory_name,
            "resource_memory_percentage": nv.resource_memory_percentage_name,
            "resource_cores": nv.resource_core_name,
            "resource_priority": nv.resource_priority_name,
            "default_memory": nv.default_memory,
            "default_cores": nv.default_cores,
            "memory_factor": max(nv.memory_factor, 1),
            "default_count": nv.default_gpu_num,
        },
        "MLU": {
            "resource_count": mlu.resource_count_name,
            "resource_memory": mlu.resource_memory_name,
            "resource_cores": mlu.resource_core_name,
        },
    }
    if enable_ascend:
        for chip in config.vnpus.configs:
            table[chip.common_word] = ascend_entry(chip, config.ascend_soft_default)
    return table
