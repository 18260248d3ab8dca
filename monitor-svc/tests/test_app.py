"""The app: its lifespan lists the node's pods and runs the pass; /readyz waits for the list;
/metrics serves HAMi's names (and ``hami_build_info``); a deleted pod's folder is reaped."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from hami_common.k8s import PODS
from hami_common.k8s.testing import FakeApiServer
from hami_monitor.app import MonitorApp, create_app
from hami_monitor.devices import NoDevices
from hami_monitor.settings import MonitorSettings
from hami_monitor.testing import MIB, container_region, gpu_pod


def settings(tmp_path: Path) -> MonitorSettings:
    return MonitorSettings.load(["--node-name", "node-1", "--hook-path", str(tmp_path),
                                 "--feedback-interval-seconds", "0.05"])  # fmt: skip


async def until(probe: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Polls an HTTP probe (nothing to wait on but the app's answers)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.05)


async def serve(app: MonitorApp, root: Path) -> tuple[int, str, bool]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as http,
    ):

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        async def reaped() -> bool:
            return not (root / "uid-deleted_c0").exists()

        await until(ready)
        await until(reaped)
        status = (await http.get("/readyz")).status_code
        return status, (await http.get("/metrics")).text, await reaped()


def test_ready_metrics_and_reaping(tmp_path: Path) -> None:
    root = tmp_path / "vgpu" / "containers"
    container_region(root, "uid-p", "c0", devices={0: (2000 * MIB, 1000 * MIB, 0)})
    container_region(root, "uid-deleted", "c0")
    old = time.time() - 3600
    os.utime(root / "uid-deleted_c0", (old, old))
    api = FakeApiServer()
    api.add(PODS, gpu_pod("p", [[("GPU-a", 2000, 0)]]))
    app = create_app(settings(tmp_path), client=api.client(), source=NoDevices())
    status, body, reaped = asyncio.run(serve(app, root))
    assert status == 200
    assert reaped, "the deleted pod's folder was not reaped"
    assert (root / "uid-p_c0").exists()
    assert ('hami_vgpu_memory_used_bytes{namespace="team",pod="p",container="c0",'
            'vdevice_index="0",device_uuid="GPU-a",zone="vGPU"} 1048576000') in body  # fmt: skip
    assert 'hami_build_info{build_date="",compiler="cpython' in body


def test_not_ready_and_nothing_reaped_before_the_pods_are_listed(tmp_path: Path) -> None:
    root = tmp_path / "vgpu" / "containers"
    container_region(root, "uid-deleted", "c0")
    old = time.time() - 3600
    os.utime(root / "uid-deleted_c0", (old, old))
    api = FakeApiServer()
    api.intercept = lambda _request: httpx.Response(503)  # the API server is down

    async def go() -> tuple[int, int]:
        app = create_app(settings(tmp_path), client=api.client(), source=NoDevices())
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as h,
        ):
            await asyncio.sleep(0.5)  # several passes
            return (await h.get("/readyz")).status_code, (await h.get("/healthz")).status_code

    assert asyncio.run(go()) == (503, 200)
    assert (root / "uid-deleted_c0").exists(), "reaped without knowing the node's pods"
