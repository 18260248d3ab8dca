"""HAMi's monitor metrics: names, labels, the zone label, values from regions and devices."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from hami_common.protocol.annotations import MIG_ALLOCATIONS
from hami_monitor.collector import MonitorCollector
from hami_monitor.containers import Scanner
from hami_monitor.devices import HostDevice
from hami_monitor.loop import MonitorLoop
from hami_monitor.pods import PodIndex
from hami_monitor.testing import ALLOCATED, MIB, container_region, gpu_pod
from prometheus_client.parser import text_string_to_metric_families

HOST_LABELS = {"node", "device_index", "device_uuid", "device_type", "zone"}
CTR_LABELS = {"namespace", "pod", "container", "vdevice_index", "device_uuid", "zone"}


class TwoGpus:
    """The hardware: two devices as a driver would report them (the second without
    utilisation, as NVML's NOT_SUPPORTED)."""

    vendor = "NVIDIA"
    allocated_annotation = ALLOCATED

    def devices(self) -> Sequence[HostDevice]:
        return [
            HostDevice(0, "GPU-a", "NVIDIA-Tesla-T4", 3000 * MIB, 16384 * MIB, 40.0, 7.0),
            HostDevice(1, "GPU-b", "NVIDIA-Tesla-T4", 0, 16384 * MIB, None, None),
        ]

    def close(self) -> None:
        pass


def scrape(
    tmp_path: Path, *, legacy: bool = False, switch: int = 1
) -> dict[str, list[tuple[dict[str, str], float]]]:
    root = tmp_path / "containers"
    container_region(root, "uid-train", "main", devices={0: (4000 * MIB, 3000 * MIB, 30)},
                     last_kernel_s=int(time.time()) - 5, util_switch=switch,
                     ctx_spilled={0: (300 * MIB, 1000 * MIB)})  # fmt: skip
    container_region(root, "uid-stranger", "main", devices={0: (1, 1, 0)})  # pod unknown here
    pods = PodIndex(None, "node-1", ALLOCATED)
    pods.apply("SYNC", {"items": [gpu_pod("train", [[("GPU-a", 4000, 30)]],
                                          containers=["main"])]})  # fmt: skip
    scanner = Scanner(root)
    loop = MonitorLoop(scanner, pods, feedback=False, interval=1, reap_after=-1, limits_dir=None)
    collector = MonitorCollector("node-1", TwoGpus(), scanner, pods, loop, legacy=legacy)
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(collector.render()):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_host_metrics_have_hamis_names_and_labels(tmp_path: Path) -> None:
    m = scrape(tmp_path)
    [(labels, used)] = [x for x in m["hami_host_gpu_memory_used_bytes"]
                        if x[0]["device_uuid"] == "GPU-a"]  # fmt: skip
    assert set(labels) == HOST_LABELS
    assert labels == {"node": "node-1", "device_index": "0", "device_uuid": "GPU-a",
                      "device_type": "NVIDIA-Tesla-T4", "zone": "vGPU"}  # fmt: skip
    assert used == 3000 * MIB
    assert [v for _, v in m["hami_host_gpu_utilization_ratio"]] == [40.0]  # GPU-b: unsupported


def test_hami_bug_memory_controller_metric_lacks_node(tmp_path: Path) -> None:
    # HAMi exports hami_host_gpu_memory_controller_utilization_ratio without `node`, so it cannot
    # be told apart across nodes by anything but the UUID; ours carries it (no query breaks)
    [(labels, value)] = scrape(tmp_path)["hami_host_gpu_memory_controller_utilization_ratio"]
    assert set(labels) == HOST_LABELS
    assert labels["node"] == "node-1"
    assert value == 7.0


def test_container_metrics_from_the_region(tmp_path: Path) -> None:
    m = scrape(tmp_path)
    [(labels, used)] = m["hami_vgpu_memory_used_bytes"]
    assert set(labels) == CTR_LABELS
    assert labels == {"namespace": "team", "pod": "train", "container": "main",
                      "vdevice_index": "0", "device_uuid": "GPU-a", "zone": "vGPU"}  # fmt: skip
    assert used == 3000 * MIB
    assert m["hami_vgpu_memory_limit_bytes"][0][1] == 4000 * MIB
    assert m["hami_container_device_memory_bytes"][0][1] == 3000 * MIB
    assert 4 <= m["hami_container_last_kernel_elapsed_seconds"][0][1] < 60
    # Of the 3000 MiB used: 300 the driver holds (contexts, modules), 1000 spilled to host memory.
    assert m["hami_vgpu_memory_context_bytes"][0][1] == 300 * MIB
    assert m["hami_vgpu_memory_buffer_bytes"][0][1] == 2700 * MIB
    assert m["hami_vgpu_memory_spilled_bytes"][0][1] == 1000 * MIB


def test_containers_of_pods_not_on_the_node_are_counted_not_exported(tmp_path: Path) -> None:
    m = scrape(tmp_path)
    states = {labels["state"]: v for labels, v in m["hami_monitor_containers"]}
    assert states == {"ok": 1, "initializing": 0, "invalid": 0, "orphan": 1}
    assert len(m["hami_vgpu_memory_used_bytes"]) == 1


def test_legacy_names_only_behind_the_flag(tmp_path: Path) -> None:
    assert "vGPU_device_memory_usage_in_bytes" not in scrape(tmp_path)
    m = scrape(tmp_path / "again", legacy=True)
    [(labels, used)] = m["vGPU_device_memory_usage_in_bytes"]
    assert set(labels) == {"podnamespace", "podname", "ctrname", "vdeviceid", "deviceuuid", "zone"}
    assert used == 3000 * MIB
    assert {x[0]["deviceuuid"] for x in m["HostGPUMemoryUsage"]} == {"GPU-a", "GPU-b"}
    assert "Device_memory_desc_of_container" in m


def test_a_container_running_alone_uses_what_its_device_uses(tmp_path: Path) -> None:
    # switch 0: the loop let it run unthrottled, so the limiter measures nothing; it is the
    # only one launching on GPU-a, whose own utilisation (40 %) is then the container's
    [(_, alone)] = scrape(tmp_path / "a", switch=0)["hami_container_device_utilization_ratio"]
    assert alone == 40.0
    assert "hami_container_device_utilization_ratio" not in scrape(tmp_path / "b", switch=1)


def test_mig_instances_of_the_node_s_pods(tmp_path: Path) -> None:
    """HAMi's hami_mig_device_info: one per instance made (with its runtime identity); an
    instance only reserved, not made yet, is not listed."""
    pods = PodIndex(None, "node-1", ALLOCATED)
    pod = gpu_pod("infer", [[("GPU-m", 9856, 15), ("GPU-m", 4864, 15)]], containers=["main"])
    pod["metadata"]["annotations"][MIG_ALLOCATIONS] = json.dumps([
        {"containerIndex": 0, "deviceIndex": 0, "gpuUUID": "GPU-m", "profile": "1g.10gb",
         "placement": {"start": 4, "size": 2}, "migUUID": "MIG-1", "gpuInstanceID": 3,
         "computeInstanceID": 0},
        {"containerIndex": 0, "deviceIndex": 1, "gpuUUID": "GPU-m", "profile": "1g.5gb",
         "placement": {"start": 6, "size": 1}},
    ])  # fmt: skip
    pods.apply("SYNC", {"items": [pod]})
    scanner = Scanner(tmp_path / "containers")
    loop = MonitorLoop(scanner, pods, feedback=False, interval=1, reap_after=-1, limits_dir=None)
    text = MonitorCollector("node-1", TwoGpus(), scanner, pods, loop).render()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "hami_mig_device_info"]
    assert [(s.labels, s.value) for s in family.samples] == [(
        {"namespace": "team", "pod": "infer", "container": "main", "vdevice_index": "0",
         "device_uuid": "GPU-m", "mig_uuid": "MIG-1", "profile": "1g.10gb",
         "gpu_instance_id": "3", "compute_instance_id": "0"}, 1.0)]  # fmt: skip
