"""Ascend and Cambricon through the binding: the vendor table's Ascend chips and its errors, the
vendors' codecs, and the annotations a filter decision carries."""

from __future__ import annotations

import json

import hami_rustcore as hc
import pytest

CHIP: dict[str, str | int | bool | list[dict[str, str | int]]] = {
    "kind": "ascend",
    "resource_count": "huawei.com/Ascend310P",
    "resource_memory": "huawei.com/Ascend310P-memory",
    "resource_cores": "huawei.com/Ascend310P-core",
    "memory_allocatable": 21527,
    "memory_capacity": 24576,
    "templates": [{"name": "vir01", "memory": 3072}, {"name": "vir04", "memory": 12288}],
}


def test_an_ascend_chip_joins_the_vendor_table() -> None:
    specs = hc.RequestModel({"Ascend310P": CHIP}).vendor_specs()
    assert specs["Ascend310P"]["allocated_annotation"] == "hami.io/Ascend310P-devices-allocated"
    assert specs["Ascend310P"]["handshake_annotation"] == "hami.io/node-handshake-Ascend310P"
    assert specs["MLU"]["kind"] == "cambricon"
    assert specs["NVIDIA"]["kind"] == "nvidia"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"Ascend310P": {"resource_count": "x"}}, 'an Ascend chip needs "kind": "ascend"'),
        ({"Ascend310P": {**CHIP, "templatez": []}}, 'unknown key "templatez"'),
        ({"Ascend310P": {**CHIP, "memory_allocatable": 0}}, "needs the MiB of a whole NPU"),
        (
            {"Ascend310P": {**CHIP, "templates": [{"memory": 1}]}},
            r"templates\[0\]: name is missing",
        ),
        ({"NVIDIA": {"kind": "ascend"}}, "is not this vendor's kind"),
    ],
)
def test_bad_vendor_tables_name_the_key(table: dict[str, dict[str, object]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hc.RequestModel(table)  # type: ignore[arg-type]


def test_vendor_codecs_round_trip() -> None:
    items = [("vdie-3", "vir05_1c_16g", 16384, 0), ("vdie-4", "", 28672, 40)]
    text = hc.encode_ascend_runtime(items)
    assert text == (
        '[{"UUID":"vdie-3","temp":"vir05_1c_16g","memory":16384},'
        '{"UUID":"vdie-4","memory":28672,"core":40}]'
    )
    assert hc.decode_ascend_runtime(text) == items
    with pytest.raises(hc.DecodeError, match=r"entry \[0\]"):
        hc.decode_ascend_runtime('[{"temp":"x"}]')
    mlus = hc.cambricon_devices("n1", 200, 192)
    assert [(d.id, d.devmem, d.count) for d in mlus] == [
        ("n1-cambricon-mlu-0", 24576, 100),
        ("n1-cambricon-mlu-1", 24576, 100),
    ]
    npu = hc.Device("vdie-0", 7, 21527, 8, "Ascend310P", vendor="Ascend310P")
    assert '"mode"' not in hc.encode_node_devices([npu], with_mode=False)
    [back] = hc.decode_node_devices(hc.encode_node_devices([npu]), "Ascend310P", "template")
    assert back.mode == "template"


def test_a_filter_carries_the_vendors_annotations() -> None:
    cluster = hc.Cluster(vendors={"Ascend310P": CHIP})
    cluster.set_node("n1", [hc.Device("vdie-0", 7, 21527, 8, "Ascend310P", vendor="Ascend310P",
                                      mode="template")])  # fmt: skip
    limits = {"huawei.com/Ascend310P": "1", "huawei.com/Ascend310P-memory": "2000"}
    pod = {"metadata": {"uid": "u", "name": "p", "namespace": "ns"},
           "spec": {"containers": [{"name": "c", "resources": {"limits": limits}}]}}  # fmt: skip
    result = cluster.filter(cluster.pod_request(json.dumps(pod)), ["n1"], now=1787293240.0)
    assert result.annotations == {
        "huawei.com/Ascend310P": '[{"UUID":"vdie-0","temp":"vir01","memory":3072}]',
        "predicate-time": "1787293240",
    }
