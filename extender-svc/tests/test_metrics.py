"""The scheduler metrics: HAMi's names and labels (control-plane reference §9.1) with values,
the per-container allocation, pending pods by reason, the legacy names behind the flag."""

from __future__ import annotations

from collections import Counter

import hami_rustcore as core
from hami_common.telemetry import new_registry
from hami_extender.metrics import ExtenderMetrics
from prometheus_client.parser import text_string_to_metric_families

MIB = 2**20
DEV = {"node", "device_uuid", "device_index", "device_type", "zone"}


def scrape(legacy: bool = False) -> dict[str, list[tuple[dict[str, str], float]]]:
    cluster = core.Cluster()
    devices = [core.Device(f"GPU-{x}", 10, 16000, 100, "NVIDIA-T4", index=i)
               for i, x in enumerate("ab")]  # fmt: skip
    cluster.set_node("n1", devices)
    given = [[], [core.AllocDevice("GPU-b", "NVIDIA", 3000, 30)]]  # an init container first
    cluster.upsert_pod("uid-p", "team", "p", "n1", given, 1)
    metrics = ExtenderMetrics(new_registry(), cluster, legacy=legacy)
    metrics.state.placed = lambda: ["uid-p", "uid-gone"]
    metrics.state.pending = lambda: Counter({"CardInsufficientMemory": 2, "NotFilteredYet": 1})
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_device_gauges_with_hamis_labels() -> None:
    m = scrape()
    by_uuid = {labels["device_uuid"]: (labels, v) for labels, v in m["hami_gpu_memory_limit_bytes"]}
    labels, value = by_uuid["GPU-b"]
    assert set(labels) == DEV
    assert (labels["device_index"], labels["zone"], value) == ("1", "vGPU", 16000 * MIB)
    [(alloc_labels, alloc)] = [x for x in m["hami_gpu_memory_allocated_bytes"]
                               if x[0]["device_uuid"] == "GPU-b"]  # fmt: skip
    assert (alloc_labels["device_cores"], alloc) == ("100", 3000 * MIB)
    [(overview, _)] = [x for x in m["hami_node_gpu_overview"] if x[0]["device_uuid"] == "GPU-b"]
    assert set(overview) == DEV | {"device_cores", "device_memory_limit"}
    assert {v for labels, v in m["hami_gpu_core_allocated_ratio"]} == {0, 30}


def test_per_container_allocation() -> None:
    [(labels, value)] = scrape()["hami_vgpu_memory_allocated_bytes"]
    assert labels == {"namespace": "team", "node": "n1", "pod": "p", "container_index": "1",
                      "device_uuid": "GPU-b", "zone": "vGPU"}  # fmt: skip
    assert value == 3000 * MIB


def test_pending_pods_by_reason() -> None:
    m = scrape()
    assert {labels["reason"]: v for labels, v in m["hami_extender_pending_pods"]} == {
        "CardInsufficientMemory": 2, "NotFilteredYet": 1}  # fmt: skip
    assert "GPUDeviceMemoryLimit" not in m
    assert m["hami_extender_filter_duration_seconds_count"][0][1] == 0


def test_legacy_names_behind_the_flag() -> None:
    m = scrape(legacy=True)
    labels, _ = m["GPUDeviceMemoryLimit"][0]
    assert set(labels) == {"nodeid", "deviceuuid", "deviceidx", "devicetype", "zone"}
    [(pod, value)] = m["vGPUMemoryAllocated"]
    assert (pod["podname"], pod["containeridx"], value) == ("p", "1", 3000 * MIB)
    assert "nodeGPUOverview" in m


def test_mig_instances_made() -> None:
    """HAMi's hami_node_gpu_mig_instance_info: one per instance with its runtime identity; a
    reservation the plugin has not made yet is not one."""
    cluster = core.Cluster()
    cluster.set_node("n1", [core.Device("GPU-m", 7, 40192, 100, "NVIDIA A100-SXM4-40GB",
                                        index=3, mode="mig")])  # fmt: skip
    mig = ('[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-m","profile":"1g.10gb",'
           '"placement":{"start":6,"size":2},"migUUID":"MIG-x","gpuInstanceID":5,'
           '"computeInstanceID":0},{"containerIndex":0,"deviceIndex":1,"gpuUUID":"GPU-m",'
           '"profile":"1g.5gb","placement":{"start":0,"size":1}}]')  # fmt: skip
    given = [[core.AllocDevice("GPU-m", "NVIDIA", 9856, 15),
              core.AllocDevice("GPU-m", "NVIDIA", 4864, 15)]]  # fmt: skip
    cluster.upsert_pod("uid-m", "team", "m", "n1", given, mig_allocations=mig)
    other = mig.replace('"start":6', '"start":4').replace("MIG-x", "MIG-y")
    cluster.upsert_pod(
        "uid-n", "team", "n", "n1", given[:1], mig_allocations=other[: other.index("},{")] + "}]"
    )
    metrics = ExtenderMetrics(new_registry(), cluster)
    metrics.state.placed = lambda: ["uid-m", "uid-n"]
    families = text_string_to_metric_families(metrics.render().decode())
    [family] = [f for f in families if f.name == "hami_node_gpu_mig_instance_info"]
    labels = {"node": "n1", "device_uuid": "GPU-m", "device_index": "3", "mig_uuid": "MIG-x",
              "profile": "1g.10gb", "gpu_instance_id": "5", "compute_instance_id": "0",
              "placement_start": "6", "placement_size": "2"}  # fmt: skip
    assert [(s.labels, s.value) for s in family.samples] == [
        (labels, 1.0),
        ({**labels, "mig_uuid": "MIG-y", "placement_start": "4"}, 1.0),
    ]
