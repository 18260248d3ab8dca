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
