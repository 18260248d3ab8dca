"""`./just bench-extender`: /filter over HTTP on loopback at 5,000 nodes x 8 GPUs, 40,000 placed.

The extender runs as a separate process (uvicorn, the real app) whose Kubernetes client talks
over loopback HTTP to `fake_api.py`, another process that serves the node list and paged pod
lists shaped like a real API server's and keeps the watches open; the state is therefore loaded
through the real list-then-watch path. Requests are sent one at a time, as kube-scheduler's
serial scheduling cycle does, over one keep-alive connection. Printed:

- ``extender_state_load_s``: extender process start to ready (nodes and pods listed, decoded and
  in the core) for 5,000 nodes and 100,000 pods, median of ``--load-runs``; ``extender_rss_mb``:
  its resident memory then (and its peak);
- ``extender_filter_http_p50_ms`` / ``extender_filter_http_p99_ms`` (``persist=bind``: the path
  stays in memory) and ``..._persist_filter`` (the pod patch is awaited inside /filter; the fake
  API answers at once, so a real API server's write latency comes on top of this figure).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from fake_api import NODES
from hami_e2e.components import free_port

PLACED, LOADED = 40000, 100000
HERE = Path(__file__).parent


def start_fake_api(pods: int) -> tuple[subprocess.Popen[bytes], int]:
    """`fake_api.py` in its own process, serving ``pods`` placed pods; waits until it listens."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "fake_api.py"), str(port), str(pods)],
                            stdout=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        raise RuntimeError("the fake API server did not start")
    return proc, port


def serve(port: int, persist: str, api_port: int) -> None:
    """The extender's own server (plain HTTP on loopback, as the listening rule allows), on
    uvloop as the service runs, over a client of the fake API."""
    import uvloop
    from hami_common.k8s import ClusterConfig, KubeClient
    from hami_extender.app import create_app
    from hami_extender.server import build_server
    from hami_extender.settings import ExtenderSettings

    # HAMI_EXTENDER_* variables apply (threads, policies...), as they would to the service.
    settings = ExtenderSettings.load(
        ["--port", str(port), "--persist-reservation", persist, "--log-level", "warning"],
        os.environ,
    )
    client = KubeClient(ClusterConfig(server=f"http://127.0.0.1:{api_port}"))
    uvloop.run(build_server(settings, create_app(settings, client=client)).serve())


def memory_mb(pid: int) -> tuple[float, float]:
    """The process's resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )  # fmt: skip
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def pod(i: int) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "2000", "nvidia.com/gpucores": "5"}
    return {"metadata": {"uid": f"bench-{i}", "namespace": "bench", "name": f"b-{i}",
                         "resourceVersion": "5"},
            "spec": {"schedulerName": "hami-scheduler",
                     "containers": [{"name": "c", "resources": {"limits": limits}}]}}  # fmt: skip


Procs = list[subprocess.Popen[bytes]]


def start_extender(persist: str, pods: int) -> tuple[Procs, int, float]:
    """The fake API, then the extender; returns both processes, the extender's port and the
    seconds from its start to ready (the whole list-then-sync, process start included)."""
    api, api_port = start_fake_api(pods)
    port = free_port()
    env = dict(os.environ, OTEL_TRACES_EXPORTER="none")
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--persist", persist,
                             "--api-port", str(api_port)], env=env)  # fmt: skip
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return [proc, api], port, time.monotonic() - began
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() - began > 300:
            for p in (proc, api):
                p.kill()
            raise RuntimeError("the extender did not become ready")
        time.sleep(0.02)


def stop(procs: Procs) -> None:
    for proc in procs:
        proc.terminate()
        proc.wait(30)


def load(runs: int) -> None:
    """State load of LOADED pods + NODES nodes, and the extender's memory once loaded."""
    seconds, rss, peak = [], [], []
    for _ in range(runs):
        procs, _, elapsed = start_extender("bind", LOADED)
        now, high = memory_mb(procs[0].pid)
        stop(procs)
        seconds.append(elapsed)
        rss.append(now)
        peak.append(high)
        print(f"# load run: {elapsed:.2f} s, rss {now:.0f} MB, peak {high:.0f} MB", flush=True)
    print(f"extender_state_load_s={statistics.median(seconds):.2f} s ({NODES} nodes, {LOADED} "
          f"pods, process start included; median of {runs})")  # fmt: skip
    print(f"extender_rss_mb={statistics.median(rss):.0f} MB (peak {statistics.median(peak):.0f})")


def measure(persist: str, requests: int) -> None:
    procs, port, _ = start_extender(persist, PLACED)
    try:
        suffix = "" if persist == "bind" else "_persist_filter"
        names = [f"node-{n:05d}" for n in range(NODES)]
        conn = http.client.HTTPConnection("127.0.0.1", port)
        times = []
        for i in range(requests + 50):
            body = orjson.dumps({"Pod": pod(i), "NodeNames": names})
            t0 = time.perf_counter()
            conn.request("POST", "/filter", body, {"Content-Type": "application/json"})
            answer = orjson.loads(conn.getresponse().read())
            elapsed = time.perf_counter() - t0
            if answer["Error"] or not answer["NodeNames"]:
                raise RuntimeError(f"filter failed: {answer['Error']}")
            if i >= 50:
                times.append(elapsed * 1000)
        times.sort()
        p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99) - 1]
        print(f"extender_filter_http_p50_ms{suffix}={p50:.2f} ms")
        print(f"extender_filter_http_p99_ms{suffix}={p99:.2f} ms", flush=True)
    finally:
        stop(procs)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench-extender", description=__doc__)
    parser.add_argument("--serve", type=int)
    parser.add_argument("--persist", default="bind", choices=["bind", "filter"])
    parser.add_argument("--api-port", type=int)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--load-runs", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.persist, args.api_port)
        return 0
    load(args.load_runs)
    measure("bind", args.requests)
    measure("filter", args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
