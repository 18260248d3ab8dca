"""`./just bench-core`: the Rust core at 5,000 nodes x 8 GPUs with 40,000 placed containers,
against a pure-Python implementation of the same rules measured in the same run; and the same
state size of Huawei Ascend 910B3 NPUs (HAMi's chart chip: 4 slots, templates, NetworkID groups).
Prints `name=value unit` lines."""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import hami_rustcore as hc

sys.path.insert(0, str(Path(__file__).parent))
from pyref import RefDevice, RefNode, RefRequest, filter_nodes

NODES = 5000
GPUS = 8
PLACED = 40_000
MIB = 81_920


def node_name(i: int) -> str:
    return f"node-{i:05d}"


def uuid(n: int, g: int) -> str:
    return f"GPU-{n:05d}-{g}"


def nvlink_pairs(n: int) -> list[tuple[str, dict[str, int]]]:
    """Two NVLink islands of four GPUs (600 within, 20 across), like a DGX-style board."""
    out = []
    for a in range(GPUS):
        scores = {uuid(n, b): (600 if a // 4 == b // 4 else 20) for b in range(GPUS) if b != a}
        out.append((uuid(n, a), scores))
    return out


def build(
    rng: random.Random,
) -> tuple[hc.Cluster, dict[str, RefNode], list[tuple[str, str, str, str, str, int]]]:
    cluster = hc.Cluster(node_policy="binpack", gpu_policy="spread")
    ref: dict[str, RefNode] = {}
    for n in range(NODES):
        devices = [
            hc.Device(uuid(n, g), 10, MIB, 100, "NVIDIA-H100-80GB", index=g, numa=g // 4)
            for g in range(GPUS)
        ]
        cluster.set_node(node_name(n), devices, pair_scores=nvlink_pairs(n))
        ref[node_name(n)] = RefNode(
            node_name(n),
            [
                RefDevice(uuid(n, g), g, 10, MIB, 100, "nvidia-h100-80gb", g // 4)
                for g in range(GPUS)
            ],
        )
    pods = []
    for p in range(PLACED):
        n, g = p % NODES, rng.randrange(GPUS)
        mem, cores = rng.randrange(1000, 20000), rng.randrange(5, 40)
        pods.append(
            (
                f"uid-{p}",
                "bench",
                f"pod-{p}",
                node_name(n),
                f"{uuid(n, g)},NVIDIA,{mem},{cores}:;",
                0,
            )
        )
        d = ref[node_name(n)].devices[g]
        d.used += 1
        d.usedmem += mem
        d.usedcores += cores
    errors = cluster.upsert_pods(pods)
    assert not errors, errors[:3]
    return cluster, ref, pods


# HAMi's chart entry of the 910B3 (charts/hami device-configmap.yaml), as the core takes it.
ASCEND: dict[str, dict[str, str | int | bool | list[dict[str, str | int]]]] = {
    "Ascend910B3": {
        "kind": "ascend",
        "resource_count": "huawei.com/Ascend910B3",
        "resource_memory": "huawei.com/Ascend910B3-memory",
        "resource_cores": "huawei.com/Ascend910B3-core",
        "memory_allocatable": 65536,
        "memory_capacity": 65536,
        "templates": [
            {"name": "vir05_1c_16g", "memory": 16384, "ai_core": 5, "ai_cpu": 1},
            {"name": "vir10_3c_32g", "memory": 32768, "ai_core": 10, "ai_cpu": 3},
        ],
    }
}
NPU_MIB = 65536


def npu(n: int, g: int) -> str:
    return f"{n:08X}-00002000-00003000-00004000-{g:08X}"


def ascend_cluster(rng: random.Random) -> hc.Cluster:
    """5,000 nodes x 8 template-mode 910B3 NPUs holding 40,000 template containers."""
    cluster = hc.Cluster(node_policy="binpack", gpu_policy="spread", vendors=ASCEND)
    for n in range(NODES):
        devices = [
            hc.Device(npu(n, g), 4, NPU_MIB, 20, "Ascend910B3", vendor="Ascend910B3", index=g,
                      mode="template", custominfo_json=f'{{"NetworkID":{g // 4}}}')
            for g in range(GPUS)
        ]  # fmt: skip
        cluster.set_node(node_name(n), devices)
    pods = []
    for p in range(PLACED):
        n, g = p % NODES, rng.randrange(GPUS)
        mem = rng.choice((16384, 16384, 32768))
        text = f"{npu(n, g)},Ascend910B3,{mem},0:;"
        pods.append((f"npu-{p}", "bench", f"npu-{p}", node_name(n), text, 0))
    errors = cluster.upsert_pods(pods)
    assert not errors, errors[:3]
    return cluster


def bench_ascend(rng: random.Random, names: list[str]) -> None:
    cluster = ascend_cluster(rng)
    one = hc.PodRequest("bench-npu", "bench", "bench-npu", [hc.ContainerRequest(
        [hc.DeviceRequest("Ascend910B3", 1, mem_mib=16384)])])  # fmt: skip
    two = hc.PodRequest("bench-npu2", "bench", "bench-npu2", [hc.ContainerRequest(
        [hc.DeviceRequest("Ascend910B3", 2, mem_mib=65536)])])  # fmt: skip
    placed = cluster.filter(one, names, reserve=False)
    assert placed.node is not None, placed.failed_head(3)
    for _ in range(5):
        cluster.filter(one, names, reserve=False)
    one_us = median_us(lambda: cluster.filter(one, names, reserve=False), 101)
    two_us = median_us(lambda: cluster.filter(two, names, reserve=False), 51)
    print(f"core_filter_ascend_5000x8_median_us={one_us:.0f} us")
    print(f"core_filter_ascend_5000x8_two_npus_median_us={two_us:.0f} us")


H100 = "NVIDIA H100 80GB HBM3"


def bench_mig(rng: random.Random, names: list[str]) -> None:
    """5,000 nodes x 8 MIG-mode H100s (dynamic MIG), each GPU holding one 1g.10gb instance at a
    random legal placement (40,000 reservations); a pod asks for a 15 GB instance."""
    cluster = hc.Cluster(node_policy="binpack", gpu_policy="spread")
    profiles = hc.mig_registration(H100)
    assert profiles is not None
    whole = max(p[2] for p in (hc.mig_geometry(H100) or (0, []))[1])
    for n in range(NODES):
        text = ",".join(
            f'{{"id":"{uuid(n, g)}","index":{g},"count":7,"devmem":{whole},"devcore":100,'
            f'"type":"{H100}","numa":{g // 4},"mode":"mig","health":true,"migProfiles":{profiles}}}'
            for g in range(GPUS)
        )
        cluster.set_node(node_name(n), hc.decode_node_devices(f"[{text}]"))
    for p in range(PLACED):
        n, g, start = p % NODES, (p // NODES) % GPUS, rng.randrange(7)
        mig = (
            f'[{{"containerIndex":0,"deviceIndex":0,"gpuUUID":"{uuid(n, g)}",'
            f'"profile":"1g.10gb","placement":{{"start":{start},"size":1}}}}]'
        )
        cluster.upsert_pod(f"mig-{p}", "bench", f"mig-{p}", node_name(n),
                           f"{uuid(n, g)},NVIDIA,9984,13:;", mig_allocations=mig)  # fmt: skip
    request = hc.ContainerRequest([hc.DeviceRequest("NVIDIA", 1, mem_mib=15000)])
    pod = hc.PodRequest(
        "bench-mig", "bench", "bench-mig", [request], {"nvidia.com/vgpu-mode": "mig"}
    )
    placed = cluster.filter(pod, names, reserve=False)
    assert placed.node is not None, placed.failed_head(3)
    assert "hami.io/vgpu-mig-allocations" in placed.annotations
    for _ in range(5):
        cluster.filter(pod, names, reserve=False)
    mig_us = median_us(lambda: cluster.filter(pod, names, reserve=False), 101)
    print(f"core_filter_mig_5000x8_median_us={mig_us:.0f} us")


def alloc_text(device: str, rng: random.Random) -> str:
    return f"{device},NVIDIA,{rng.randrange(1000, 8000)},{rng.randrange(1, 10)}:;"


def median_us(fn: object, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return statistics.median(samples)


def main() -> None:
    rng = random.Random(7)
    cluster, ref, pods = build(rng)
    names = [node_name(n) for n in range(NODES)]
    one = hc.PodRequest(
        "bench-pod",
        "bench",
        "bench-pod",
        [hc.ContainerRequest([hc.DeviceRequest("NVIDIA", 1, mem_mib=3000, cores=30)])],
    )
    four = hc.PodRequest(
        "bench-topo",
        "bench",
        "bench-topo",
        [hc.ContainerRequest([hc.DeviceRequest("NVIDIA", 4, mem_mib=3000, cores=30)])],
        {"hami.io/gpu-scheduler-policy": "spread,topology-aware"},
    )
    # Sanity: the Rust core and the baseline agree on the node for the 1-GPU request.
    rust_node = cluster.filter(one, names, reserve=False).node
    ref_node, _ = filter_nodes(ref, names, RefRequest(1, 3000, 30))
    if rust_node != ref_node:
        raise SystemExit(f"baseline disagrees with the core: {rust_node} != {ref_node}")
    for _ in range(5):
        cluster.filter(one, names, reserve=False)
    core_us = median_us(lambda: cluster.filter(one, names, reserve=False), 101)
    topo_us = median_us(lambda: cluster.filter(four, names, reserve=False), 51)
    # a burst: 1,000 pods pending behind this one, binpack's window of 4 nodes
    burst_us = median_us(
        lambda: cluster.filter(one, names, reserve=False, backlog=1000, window=4), 101
    )
    py_us = median_us(lambda: filter_nodes(ref, names, RefRequest(1, 3000, 30)), 5)
    print(f"core_filter_5000x8_median_us={core_us:.0f} us")
    print(f"core_filter_5000x8_topo4_median_us={topo_us:.0f} us")
    print(f"core_filter_5000x8_burst_median_us={burst_us:.0f} us (1,000 pending, window 4)")
    print(f"core_filter_5000x8_python_median_us={py_us:.0f} us")
    print(f"core_filter_speedup_vs_python={py_us / core_us:.1f} x")
    bench_ascend(rng, names)
    bench_mig(rng, names)

    # 100,000 allocation annotations applied from their strings to a fresh state.
    fresh = hc.Cluster()
    for n in range(NODES):
        fresh.set_node(
            node_name(n),
            [
                hc.Device(uuid(n, g), 40, MIB * 4, 400, "NVIDIA-H100-80GB", index=g)
                for g in range(GPUS)
            ],
        )
    many = [
        (
            f"uid-{p}",
            "bench",
            f"pod-{p}",
            node_name(p % NODES),
            alloc_text(uuid(p % NODES, rng.randrange(GPUS)), rng),
            0,
        )
        for p in range(100_000)
    ]
    t0 = time.perf_counter()
    errors = fresh.upsert_pods(many)
    load_ms = (time.perf_counter() - t0) * 1000
    assert not errors
    assert fresh.pod_count() == 100_000
    print(f"core_load_100k_pods_ms={load_ms:.0f} ms")
    del pods


if __name__ == "__main__":
    main()
