"""The device model: the core's request model and the vendors' rules from one device config."""

from __future__ import annotations

import json

from hami_common.settings import core_vendor_table, parse_device_config
from hami_rustcore import Cluster
from hami_webhook.devices import DeviceModel
from hami_webhook.testing import container, pod

CONFIG = parse_device_config(
    {"nvidia": {"resourceMemoryName": "example.com/vmem", "memoryFactor": 4}}
)


def test_the_model_reads_pods_as_the_extenders_cluster_does() -> None:
    model = DeviceModel.from_config(CONFIG)
    p = json.dumps(pod(container(limits={"nvidia.com/gpu": "1", "example.com/vmem": "8"})))
    # the extender builds its Cluster from the same table (ExtenderSettings.vendors())
    cluster = Cluster(vendors=core_vendor_table(CONFIG))
    assert model.requests.pod_request(p) == cluster.pod_request(p)
    assert model.requests.pod_request(p).containers[0].devices[0].mem_mib == 32


def test_quota_names_and_memory_factors_come_from_the_vendor_table() -> None:
    model = DeviceModel.from_config(CONFIG)
    assert model.vendors == {"NVIDIA", "MLU"}
    assert sorted(model.quota_resources()) == [
        "cambricon.com/mlu.smlu.vcore",
        "cambricon.com/mlu.smlu.vmemory",
        "example.com/vmem",
        "nvidia.com/gpucores",
    ]
    assert model.memory_factors() == {"example.com/vmem": 4, "cambricon.com/mlu.smlu.vmemory": 256}
