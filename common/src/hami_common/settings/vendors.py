"""The Rust core's vendor table from HAMi's device config, one for every service.

The webhook (`hami_rustcore.RequestModel`) and the extender (`hami_rustcore.Cluster`) build their
request model from this same table, so a pod is read the same way at admission and at fit.
"""

from __future__ import annotations

from hami_common.settings.device_config import DeviceConfig

VendorTable = dict[str, dict[str, str | int]]


def core_vendor_table(config: DeviceConfig) -> VendorTable:
    """Resource names and request defaults per vendor key, as the core's ``vendors=`` takes them.

    NVIDIA's come from the ``nvidia:`` section (``memoryFactor`` 0 means no scaling, as 1 does;
    ``defaultGPUNum`` is the count admission adds to a container that gives only memory or
    cores), Cambricon's names from ``cambricon:`` (its memory factor, 256, and defaults are
    fixed by HAMi).
    """
    nv = config.nvidia
    mlu = config.cambricon
    return {
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
