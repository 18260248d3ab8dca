"""The core's vendor table from the device config: what the webhook and the extender share."""

from __future__ import annotations

import json

import hami_rustcore as core
from hami_common.settings import core_vendor_table, parse_device_config


def test_defaults_are_the_cores_own_vendor_specs() -> None:
    table = core_vendor_table(parse_device_config({}))
    built = core.RequestModel(table).vendor_specs()
    assert built == core.RequestModel().vendor_specs()
    assert built["NVIDIA"]["default_count"] == 1
    assert built["NVIDIA"]["resource_priority"] == "nvidia.com/priority"


def test_device_config_names_and_defaults_reach_the_core() -> None:
    config = parse_device_config(
        {
            "nvidia": {
                "resourceCountName": "example.com/vgpu",
                "resourceMemoryName": "example.com/vmem",
                "defaultGPUNum": 2,
                "defaultMemory": 512,
                "memoryFactor": 0,
            },
            "cambricon": {"resourceCountName": "example.com/mlu"},
        }
    )
    table = core_vendor_table(config)
    specs = core.Cluster(vendors=table).vendor_specs()
    assert specs["NVIDIA"]["resource_count"] == "example.com/vgpu"
    assert specs["NVIDIA"]["default_count"] == 2
    assert specs["MLU"]["resource_count"] == "example.com/mlu"
    # memoryFactor 0 means no scaling, as 1 does (the core takes only positive factors)
    assert specs["NVIDIA"]["memory_factor"] == 1
    pod = {"spec": {"containers": [{"resources": {"limits": {"example.com/vmem": "10"}}}]}}
    admitted = core.RequestModel(table).admit(json.dumps(pod))
    assert admitted.containers[0].added_limits == [("example.com/vgpu", "2")]
    assert admitted.quota == {"example.com/vmem": 20}


def test_ascend_chips_join_only_when_enabled() -> None:
    config = parse_device_config(
        {
            "vnpus": {
                "hamiVnpuCore": True,
                "configs": [
                    {
                        "chipName": "910B3",
                        "commonWord": "Ascend910B3",
                        "resourceName": "huawei.com/Ascend910B3",
                        "resourceMemoryName": "huawei.com/Ascend910B3-memory",
                        "resourceCoreName": "huawei.com/Ascend910B3-core",
                        "memoryAllocatable": 65536,
                        "memoryCapacity": 65536,
                        "templates": [
                            {"name": "vir10_3c_32g", "memory": 32768, "aiCore": 10},
                            {"name": "vir05_1c_16g", "memory": 16384, "aiCore": 5},
                        ],
                    }
                ],
            }
        }
    )
    assert "Ascend910B3" not in core_vendor_table(config)
    specs = core.RequestModel(core_vendor_table(config, enable_ascend=True)).vendor_specs()
    npu = specs["Ascend910B3"]
    assert npu["kind"] == "ascend"
    assert npu["soft_default"] is True
    assert npu["register_annotation"] == "hami.io/node-register-Ascend910B3"
    assert npu["to_allocate_annotation"] == "hami.io/Ascend910B3-devices-to-allocate"
    assert npu["use_uuid_annotation"] == "hami.io/use-Ascend910B3-uuid"
    # the core sorts the templates by memory, as HAMi does at init
    assert npu["templates"] == [
        {"name": "vir05_1c_16g", "memory": 16384, "ai_core": 5, "ai_cpu": 0},
        {"name": "vir10_3c_32g", "memory": 32768, "ai_core": 10, "ai_cpu": 0},
    ]
