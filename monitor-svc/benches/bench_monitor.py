"""``./just bench-monitor``: the monitor's /metrics over HTTP on loopback for 100 containers x 8
devices (regions in files, the node's pods from the in-memory API server, 8 host devices),
against reading the same 100 regions raw in the same run.

Prints ``monitor_scrape_ms`` (p99 of 300 scrapes; target <= 50), its p50, and
``monitor_raw_read_ms`` (p99 of reading the 100 regions with `read_snapshot`, nothing else).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import uvicorn
from hami_common.k8s import PODS
from hami_common.k8s.testing import FakeApiServer
from hami_common.serving import bound_port
from hami_common.shm import read_snapshot
from hami_common.shm import region as r
from hami_monitor.app import create_app
from hami_monitor.devices import HostDevice
from hami_monitor.settings import MonitorSettings
from hami_monitor.testing import ALLOCATED, MIB, container_region, gpu_pod

CONTAINERS, DEVICES, SCRAPES = 100, 8, 300


class EightGpus:
    vendor = "NVIDIA"
    allocated_annotation = ALLOCATED

    def devices(self) -> Sequence[HostDevice]:
        return [HostDevice(i, f"GPU-{i}", "NVIDIA-A100", i * MIB, 80 * 1024 * MIB, 50.0, 10.0)
                for i in range(DEVICES)]  # fmt: skip

    def close(self) -> None:
        pass


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    root = work / "vgpu" / "containers"
    api = FakeApiServer()
    regions = []
    for c in range(CONTAINERS):
        devices = {i: (4096 * MIB, (c + i) * MIB, 30) for i in range(DEVICES)}
        slots = {s: (1000 + s, 10 + s, r.SLOT_ACTIVE, {0: MIB}) for s in range(4)}
        busy = {i: c * 10**9 for i in range(DEVICES)}
        regions.append(
            container_region(root, f"uid-p{c}", "main", devices=devices, slots=slots, busy_ns=busy)
        )
        api.add(PODS, gpu_pod(f"p{c}", [[(f"GPU-{i}", 4096, 30) for i in range(DEVICES)]],
                              containers=["main"]))  # fmt: skip
    settings = MonitorSettings.load(["--node-name", "node-1", "--hook-path", str(work),
                                     "--port", "0"])  # fmt: skip
    app = create_app(settings, client=api.client(), source=EightGpus())
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{bound_port(server)}"
    with httpx.Client(base_url=url, timeout=10) as http:
        while http.get("/readyz").status_code != 200:
            time.sleep(0.05)
        body = http.get("/metrics").text
        series = body.count("\nhami_vgpu_memory_used_bytes{")
        assert series == CONTAINERS * DEVICES, f"{series} container device series"
        scrape, raw = [], []
        for _ in range(SCRAPES):
            t0 = time.perf_counter()
            http.get("/metrics").raise_for_status()
            scrape.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            for path in regions:
                read_snapshot(path)
            raw.append((time.perf_counter() - t0) * 1e3)
    server.should_exit = True
    thread.join(timeout=10)
    print(
        f"monitor_scrape_ms={p(scrape, 99):.1f} ms "
        f"(p99 of {SCRAPES} scrapes of /metrics over HTTP: {CONTAINERS} containers x {DEVICES} "
        f"devices, {len(body) // 1024} KiB; p50 {statistics.median(scrape):.1f}; target <= 50)"
    )
    print(
        f"monitor_raw_read_ms={p(raw, 99):.1f} ms (p99 of reading the same {CONTAINERS} "
        f"regions with read_snapshot, nothing else; p50 {statistics.median(raw):.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
