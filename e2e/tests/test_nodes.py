import json

import pytest
from hami_e2e.components import KWOK_NODE_ANNOTATION
from hami_e2e.nodes import DEVICES_ANNOTATION, POOL_LABEL, NodePool


def test_manifest_is_a_kwok_node_with_labels_and_capacity() -> None:
    pool = NodePool(name="a100", count=3, labels={"gpu": "on"}, extended_resources={"x/y": "4"})
    assert pool.node_names() == ["a100-0", "a100-1", "a100-2"]
    node = pool.manifest("a100-1")
    meta = node["metadata"]
    assert meta["annotations"][KWOK_NODE_ANNOTATION] == "fake"
    assert meta["labels"]["gpu"] == "on"
    assert meta["labels"][POOL_LABEL] == "a100"
    assert meta["labels"]["kubernetes.io/hostname"] == "a100-1"
    assert node["status"]["capacity"]["x/y"] == "4"
    assert node["status"]["allocatable"] == node["status"]["capacity"]


def test_devices_spread_over_numa_nodes_with_stable_uuids() -> None:
    pool = NodePool(devices_per_node=8, numa_nodes=2, model="NVIDIA-A100", device_memory_mib=81920)
    devices = json.loads(pool.manifest("n-0")["metadata"]["annotations"][DEVICES_ANNOTATION])
    assert [d["numa"] for d in devices] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert {d["model"] for d in devices} == {"NVIDIA-A100"}
    assert {d["memory_mib"] for d in devices} == {81920}
    assert len({d["uuid"] for d in devices}) == 8
    assert devices == pool.devices("n-0")  # deterministic
    assert pool.devices("n-0")[0]["uuid"] != pool.devices("n-1")[0]["uuid"]


def test_uneven_numa_layout_fills_lower_nodes_first() -> None:
    assert [d["numa"] for d in NodePool(devices_per_node=3, numa_nodes=2).devices("n")] == [0, 0, 1]


def test_invalid_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid node pool"):
        NodePool(numa_nodes=0)


def test_vendor_devices_carry_their_vendors_ids() -> None:
    npu = NodePool(vendor="ascend", model="910B3", devices_per_node=2).devices("n")
    assert [d["phy_id"] for d in npu] == [0, 1]
    assert all(len(d["uuid"].split("-")) == 5 for d in npu)
    assert {d["vendor"] for d in npu} == {"ascend"}
    mlu = NodePool(vendor="cambricon", model="MLU370-X8", devices_per_node=1).devices("n")
    assert mlu[0]["uuid"].startswith("MLU-")
    with pytest.raises(ValueError, match="vendor 'amd' is not one of nvidia, ascend, cambricon"):
        NodePool(vendor="amd")
