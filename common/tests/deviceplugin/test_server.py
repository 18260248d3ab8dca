"""The framework against the kubelet stand-in, over real unix sockets: registration, ListAndWatch,
health changes, kubelet restarts and plugin restarts (no API server: the allocator is absent)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import hami_rustcore
import pytest
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.backend import Links, PhysicalDevice
from hami_common.deviceplugin.runtime import PluginRuntime, RuntimeOptions
from hami_common.deviceplugin.testing import FakeBackend, device_spec
from hami_common.deviceplugin.vendor import CapacityResource, ContainerContext
from hami_common.k8s import KubeClient
from hami_common.telemetry import in_memory_tracing
from hami_e2e.kubelet import DeviceManager

RESOURCE = "example.com/gpu"


class Policy:
    vendor = "NVIDIA"
    resource_name = RESOURCE
    split_count = 3
    numa_topology = True
    preferred_allocation = False
    socket_name = "example-gpu.sock"
    register_annotation = "example.com/register"

    def __init__(self, capacity: Sequence[CapacityResource] = ()) -> None:
        self.capacity = list(capacity)
        self.extra_annotations: dict[str, str] = {}
        self.released: list[str] = []

    def node_devices(self, devices: Sequence[PhysicalDevice]) -> list[hami_rustcore.Device]:
        return [hami_rustcore.Device(d.uuid, 3, d.memory_mib, 100, d.model) for d in devices]

    def node_annotations(self, devices: Sequence[PhysicalDevice], links: Links) -> dict[str, str]:
        return {}

    def container_response(self, ctx: ContainerContext) -> pb.ContainerAllocateResponse:
        raise AssertionError("not called without an API server")

    def allocated_annotations(
        self, pod: dict[str, Any], given: Sequence[ContainerContext]
    ) -> dict[str, str]:
        return dict(self.extra_annotations)

    async def release_locks(
        self, client: KubeClient, node: str, pod: dict[str, Any], *, done: bool
    ) -> None:
        self.released.append(f"{pod['metadata']['name']}{'' if done else ' (not done)'}")

    def capacity_resources(self) -> Sequence[CapacityResource]:
        return tuple(self.capacity)


@pytest.fixture
def plugin_dir() -> Iterator[Path]:
    # unix socket paths are limited to 107 bytes: keep the folder short
    path = Path(tempfile.mkdtemp(prefix="dp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _runtime(backend: FakeBackend, plugin_dir: Path) -> PluginRuntime:
    options = RuntimeOptions(node="n1", plugin_dir=plugin_dir, socket_poll_interval=0.05)
    return PluginRuntime(
        Policy(), backend, None, options, tracer_provider=in_memory_tracing("test")[0]
    )


async def _with_plugin(plugin_dir: Path, backend: FakeBackend, body):  # type: ignore[no-untyped-def]
    kubelet = DeviceManager("n1", plugin_dir)
    await kubelet.start()
    runtime = _runtime(backend, plugin_dir)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await body(kubelet, runtime)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await kubelet.stop()


def test_registers_and_lists_split_devices_with_numa(plugin_dir: Path) -> None:
    backend = FakeBackend(device_spec(2, node="a", numa_nodes=2))

    async def body(kubelet: DeviceManager, runtime: PluginRuntime) -> None:
        await kubelet.wait_for(
            lambda: (
                bool(kubelet.plugins.get(RESOURCE, None))
                and len(kubelet.plugins[RESOURCE].devices) == 6
            ),
            10,
        )
        reg = kubelet.registrations[0]
        assert (reg.version, reg.endpoint, reg.resource_name) == (
            "v1beta1",
            "example-gpu.sock",
            RESOURCE,
        )
        devices = kubelet.plugins[RESOURCE].devices
        assert sorted(devices) == sorted(f"GPU-a-{i:04d}-{j}" for i in range(2) for j in range(3))
        assert set(devices.values()) == {"Healthy"}
        assert kubelet.plugins[RESOURCE].options.pre_start_required is False

    asyncio.run(_with_plugin(plugin_dir, backend, body))


def test_one_unhealthy_device_is_reported_and_the_plugin_keeps_serving(plugin_dir: Path) -> None:
    spec = device_spec(2, node="b")
    spec["devices"][1]["fail"] = "query"
    backend = FakeBackend(spec)

    async def body(kubelet: DeviceManager, runtime: PluginRuntime) -> None:
        await kubelet.wait_for(
            lambda: RESOURCE in kubelet.plugins and kubelet.plugins[RESOURCE].updates > 0, 10
        )
        plugin = kubelet.plugins[RESOURCE]
        assert sorted(plugin.healthy) == [f"GPU-b-0000-{j}" for j in range(3)]
        # a health event on the other device: a new full list, and the process goes on
        backend.set_health("GPU-b-0000", False, "XID 48")
        await kubelet.wait_for(lambda: not plugin.healthy, 10)
        assert len(plugin.devices) == 6
        backend.set_health("GPU-b-0000", True)
        await kubelet.wait_for(lambda: len(plugin.healthy) == 3, 10)

    asyncio.run(_with_plugin(plugin_dir, backend, body))


def test_registers_again_when_kubelet_restarts(plugin_dir: Path) -> None:
    backend = FakeBackend(device_spec(1, node="c"))

    async def body(kubelet: DeviceManager, runtime: PluginRuntime) -> None:
        await kubelet.wait_for(
            lambda: RESOURCE in kubelet.plugins and kubelet.plugins[RESOURCE].updates > 0, 10
        )
        for round_ in range(2):
            await kubelet.restart()
            assert RESOURCE not in kubelet.plugins
            await kubelet.wait_for(
                lambda: RESOURCE in kubelet.plugins and kubelet.plugins[RESOURCE].updates > 0, 10
            )
            assert len(kubelet.registrations) == round_ + 2
            assert len(kubelet.plugins[RESOURCE].healthy) == 3

    asyncio.run(_with_plugin(plugin_dir, backend, body))


def test_plugin_restart_is_followed_by_kubelet(plugin_dir: Path) -> None:
    async def main() -> None:
        kubelet = DeviceManager("n1", plugin_dir)
        await kubelet.start()
        try:
            for attempt in range(2):
                runtime = _runtime(FakeBackend(device_spec(2, node="d")), plugin_dir)
                stop = asyncio.Event()
                task = asyncio.create_task(runtime.run(stop))
                await kubelet.wait_for(
                    lambda: (
                        RESOURCE in kubelet.plugins and len(kubelet.plugins[RESOURCE].healthy) == 6
                    ),
                    10,
                )
                assert len(kubelet.registrations) == attempt + 1
                stop.set()
                await asyncio.wait_for(task, 10)
                # the plugin is gone: kubelet counts its devices unhealthy, the socket is removed
                await kubelet.wait_for(lambda: not kubelet.plugins[RESOURCE].healthy, 10)
                assert not (plugin_dir / Policy.socket_name).exists()
                assert runtime.backend.closed  # type: ignore[attr-defined]
        finally:
            await kubelet.stop()

    asyncio.run(main())


def test_plugin_waits_for_kubelet_then_registers(plugin_dir: Path) -> None:
    async def main() -> None:
        runtime = _runtime(FakeBackend(device_spec(1, node="e")), plugin_dir)
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        await asyncio.sleep(0.3)  # no kubelet yet: start fails and is retried, never fatal
        assert not task.done()
        kubelet = DeviceManager("n1", plugin_dir)
        await kubelet.start()
        try:
            await kubelet.wait_for(
                lambda: RESOURCE in kubelet.plugins and kubelet.plugins[RESOURCE].updates > 0, 10
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await kubelet.stop()

    asyncio.run(main())


def test_capacity_resources_are_registered_with_their_own_replicas(plugin_dir: Path) -> None:
    # Cambricon's sMLU units: 100 cores and memory/256 memory units per card
    units = CapacityResource("example.com/vmem", "example-vmem.sock", lambda d: d.memory_mib // 256)
    backend = FakeBackend(device_spec(2, node="a", memory_mib=1024))
    runtime = PluginRuntime(
        Policy([units]),
        backend,
        None,
        RuntimeOptions(node="n1", plugin_dir=plugin_dir, socket_poll_interval=0.05),
        tracer_provider=in_memory_tracing("test")[0],
    )

    async def go() -> None:
        kubelet = DeviceManager("n1", plugin_dir)
        await kubelet.start()
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        try:

            def served(resource: str) -> int:
                return len(getattr(kubelet.plugins.get(resource), "devices", {}))

            # both resources registered and listed (in either order)
            await kubelet.wait_for(lambda: served("example.com/vmem") and served(RESOURCE), 10)
            assert served("example.com/vmem") == 8
            assert served(RESOURCE) == 6  # the vendor's own, as before
            container = {"name": "c", "resources": {"limits": {"example.com/vmem": "3"}}}
            pod = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"},
                   "spec": {"containers": [container]}}  # fmt: skip
            [answer] = await kubelet.admit(pod)
            assert answer.error is None
            assert answer.response is not None
            assert list(answer.response.envs) == []  # the vendor's resource did the work
            backend.set_health("GPU-a-0000", False)
            await kubelet.wait_for(
                lambda: kubelet.plugins["example.com/vmem"].healthy.__len__() == 4, 10
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await kubelet.stop()

    asyncio.run(go())
