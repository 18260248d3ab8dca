"""`just bench-extender`: /filter over HTTP on loopback at 5,000 nodes x 8 GPUs, 40,000 placed.

The extender runs as a separate process (uvicorn, the real app) whose Kubernetes client talks to
an in-process fake API (httpx.MockTransport) that serves the node and pod lists once and then
keeps the watches open; the state is therefore loaded through the real list-then-watch path.
Requests are sent one at a time, as kube-scheduler's serial scheduling cycle does, over one
keep-alive connection. Printed, in both persistence modes:

- ``extender_state_load_s``: list-to-synced for 5,000 nodes and 40,000 pods;
- ``extender_filter_http_p50_ms`` / ``extender_filter_http_p99_ms`` (``persist=bind``: the path
  stays in memory) and ``..._persist_filter`` (the pod patch is awaited inside /filter; the fake
  API answers at once, so a real API server's write latency comes on top of this figure).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import orjson

NODES, GPUS, PLACED = 5000, 8, 40000


def _uuid(n: int, g: int) -> str:
    return f"GPU-{n:05d}-{g}"


def node_list() -> bytes:
    import hami_rustcore as core

    items = []
    for n in range(NODES):
        devs = [core.Device(_uuid(n, g), 10, 81920, 100, "NVIDIA-A100", index=g)
                for g in range(GPUS)]  # fmt: skip
        ann = {"hami.io/node-nvidia-register": core.encode_node_devices(devs)}
        items.append({"metadata": {"name": f"node-{n:05d}", "annotations": ann}})
    return orjson.dumps({"kind": "List", "metadata": {"resourceVersion": "1"}, "items": items})


def pod_list() -> bytes:
    items = []
    for i in range(PLACED):
        n, g = i % NODES, (i // NODES) % GPUS
        value = f"{_uuid(n, g)},NVIDIA,4000,10:;"
        items.append({
            "metadata": {"uid": f"uid-{i}", "namespace": "load", "name": f"p-{i}",
                         "annotations": {"hami.io/vgpu-node": f"node-{n:05d}",
                                         "hami.io/vgpu-devices-allocated": value}},
            "spec": {"nodeName": f"node-{n:05d}", "containers": [{"name": "c"}]},
            "status": {"phase": "Running"},
        })  # fmt: skip
    return orjson.dumps({"kind": "List", "metadata": {"resourceVersion": "1"}, "items": items})


def fake_api() -> httpx.MockTransport:
    nodes, pods = node_list(), pod_list()

    async def forever() -> Any:
        await asyncio.sleep(3600)
        yield b""

    async def handle(request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, request.url.params
        if params.get("watch") == "true":
            return httpx.Response(200, content=forever())
        if request.method == "GET" and path == "/api/v1/nodes":
            return httpx.Response(200, content=nodes)
        if request.method == "GET" and path == "/api/v1/pods":
            return httpx.Response(200, content=pods)
        if request.method in ("PATCH", "POST"):
            return httpx.Response(200 if request.method == "PATCH" else 201, content=b"{}")
        return httpx.Response(404, json={"kind": "Status", "code": 404, "reason": "NotFound"})

    return httpx.MockTransport(handle)


def serve(port: int, persist: str) -> None:
    import uvicorn
    from hami_common.k8s import ClusterConfig, KubeClient
    from hami_extender.app import create_app
    from hami_extender.settings import ExtenderSettings

    settings = ExtenderSettings(port=port, persist_reservation=persist)  # type: ignore[arg-type]
    client = KubeClient(ClusterConfig(server="https://fake.invalid"), transport=fake_api())
    app = create_app(settings, client=client)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def pod(i: int) -> dict[str, Any]:
    return {"metadata": {"uid": f"bench-{i}", "namespace": "bench", "name": f"b-{i}",
                         "resourceVersion": "5"},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {
                "nvidia.com/gpu": "1", "nvidia.com/gpumem": "2000",
                "nvidia.com/gpucores": "5"}}}]}}  # fmt: skip


def measure(port: int, persist: str, requests: int) -> None:
    env = dict(os.environ, OTEL_TRACES_EXPORTER="none")
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--persist", persist],
                            env=env)  # fmt: skip
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() - began > 300:
                raise RuntimeError("the extender did not become ready")
            time.sleep(0.05)
        suffix = "" if persist == "bind" else "_persist_filter"
        if persist == "bind":
            print(f"extender_state_load_s={time.monotonic() - began:.2f} s "
                  f"({NODES} nodes, {PLACED} pods, process start included)")  # fmt: skip
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
        print(f"extender_filter_http_p99_ms{suffix}={p99:.2f} ms")
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench-extender", description=__doc__)
    parser.add_argument("--serve", type=int)
    parser.add_argument("--persist", default="bind", choices=["bind", "filter"])
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.persist)
        return 0
    from hami_e2e.components import free_port

    measure(free_port(), "bind", args.requests)
    measure(free_port(), "filter", args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
