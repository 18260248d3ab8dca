"""`RequestModel` through the binding: admission's defaults, checks, warnings and quota amounts,
over the same derivation as `Cluster.pod_request`."""

from __future__ import annotations

import json
from typing import Any

import hami_rustcore as hc
import pytest


def _pod(*limits: dict[str, Any], init: dict[str, Any] | None = None) -> str:
    spec: dict[str, Any] = {
        "containers": [
            {"name": f"c{i}", "resources": {"limits": lim}} for i, lim in enumerate(limits)
        ]
    }
    if init is not None:
        spec["initContainers"] = [{"name": "init", "resources": {"limits": init}}]
    return json.dumps({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})


def test_admit_adds_hamis_defaults_and_derives_the_defaulted_pod() -> None:
    model = hc.RequestModel()
    admitted = model.admit(_pod({"nvidia.com/gpu": "1"}, {"nvidia.com/gpumem": "3000"}, {}))
    first, second, plain = admitted.containers
    assert (first.index, first.init, first.vendors) == (0, False, ["NVIDIA"])
    assert first.added_limits == [("nvidia.com/gpucores", "100")]
    assert second.added_limits == [("nvidia.com/gpu", "1")]
    assert (plain.added_limits, plain.vendors) == ([], [])
    assert admitted.has_devices()
    assert [c.devices for c in admitted.request.containers] == [
        [hc.DeviceRequest("NVIDIA", 1, mem_percent=100, cores=100)],
        [hc.DeviceRequest("NVIDIA", 1, mem_mib=3000)],
        [],
    ]
    assert admitted.quota == {"nvidia.com/gpumem": 3000, "nvidia.com/gpucores": 100}
    assert admitted.warnings == []


def test_the_admitted_request_is_what_the_cluster_derives_once_the_limits_are_added() -> None:
    text = _pod({"nvidia.com/gpumem": "3000"}, init={"nvidia.com/gpu": "2"})
    admitted = hc.RequestModel().admit(text)
    pod = json.loads(text)
    for c in admitted.containers:
        target = pod["spec"]["initContainers" if c.init else "containers"][c.index]
        target["resources"]["limits"].update(dict(c.added_limits))
    assert hc.Cluster().pod_request(json.dumps(pod)) == admitted.request
    assert hc.RequestModel().quota_request(json.dumps(pod)) == admitted.quota


def test_refusals_are_core_errors_that_say_what_to_write() -> None:
    with pytest.raises(hc.CoreError, match=r"nvidia\.com/gpumem is in MiB: write 4096$"):
        hc.RequestModel().admit(_pod({"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4Gi"}))
    with pytest.raises(hc.CoreError, match="between 0 and 100"):
        hc.RequestModel().admit(_pod({"nvidia.com/gpumem-percentage": "101"}))
    # the extender's derivation gives the same message for the same pod
    with pytest.raises(hc.CoreError, match=r"nvidia\.com/gpumem is in MiB: write 4096$"):
        hc.Cluster().pod_request(_pod({"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4Gi"}))
    with pytest.raises(hc.DecodeError, match="line 1"):
        hc.RequestModel().admit("{not json")


def test_cambricon_memory_counts_in_units_of_256_mib() -> None:
    with pytest.raises(hc.CoreError, match=r"in units of 256 MiB: write 16$"):
        hc.RequestModel().admit(
            _pod({"cambricon.com/vmlu": "1", "cambricon.com/mlu.smlu.vmemory": "4Gi"})
        )


def test_clamped_values_are_warnings() -> None:
    admitted = hc.RequestModel().admit(_pod({"nvidia.com/gpu": "2", "nvidia.com/gpucores": "150"}))
    assert admitted.warnings == [
        "container c0: nvidia.com/gpucores is 150, more than the 100 percent of one device; "
        "it is taken as 100 (the whole device's cores)"
    ]
    assert admitted.quota == {"nvidia.com/gpucores": 200}


def test_vendor_table_keys_for_admission() -> None:
    model = hc.RequestModel(
        {"NVIDIA": {"default_count": 0, "resource_priority": "example.com/prio"}}
    )
    admitted = model.admit(_pod({"nvidia.com/gpucores": "30", "example.com/prio": "1"}))
    assert admitted.containers[0].added_limits == []
    assert admitted.containers[0].priorities == {"NVIDIA": 1}
    assert not admitted.has_devices()
    specs = model.vendor_specs()["NVIDIA"]
    assert (specs["default_count"], specs["exclusive_by_default"]) == (0, True)
    with pytest.raises(ValueError, match=r"vendors\.NVIDIA\.default_count"):
        hc.RequestModel({"NVIDIA": {"default_count": -1}})


def test_quantity_value_is_the_cores_parser() -> None:
    assert [hc.quantity_value(q) for q in ("16000", "16k", "2Ki")] == [16000, 16000, 2048]
    with pytest.raises(hc.DecodeError, match="whole number"):
        hc.quantity_value("0.5")
