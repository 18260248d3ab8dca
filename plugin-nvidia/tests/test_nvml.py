"""The NVML adapter against a scripted NVML (the real bindings with their calls replaced):
one failing GPU is reported unhealthy while the others register; init failures explain
themselves; topology and XID events map to links and health changes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml  # type: ignore[import-untyped]
import pytest
from hami_common.deviceplugin.backend import BackendInitError, Link
from hami_plugin_nvidia import nvml


@dataclass
class Gpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    mib: int = 81559
    bus: str = "00000000:3B:00.0"
    broken: bool = False
    nvlinks: dict[str, int] = field(default_factory=dict)


def err(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> list[Gpu]:
    gpus: list[Gpu] = []
    by_uuid = lambda u: next(g for g in gpus if g.uuid == u)  # noqa: E731

    def guard(gpu: Gpu) -> Gpu:
        if gpu.broken:
            raise err(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu

    events: asyncio.Queue[Any] = asyncio.Queue()
    calls: dict[str, Any] = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: len(gpus),
        "nvmlDeviceGetHandleByIndex": lambda i: gpus[i],
        "nvmlDeviceGetHandleByUUID": by_uuid,
        "nvmlDeviceGetUUID": lambda g: g.uuid.encode(),
        "nvmlDeviceGetName": lambda g: guard(g).name,
        "nvmlDeviceGetPciInfo": lambda g: SimpleNamespace(busId=g.bus.encode()),
        "nvmlDeviceGetMemoryInfo": lambda g: SimpleNamespace(total=g.mib * 1024 * 1024),
        "nvmlDeviceGetMigMode": lambda g: (0, 0),
        "nvmlDeviceGetTopologyCommonAncestor": lambda a, b: 10,
        "nvmlDeviceGetNvLinkState": lambda g, link: (
            pynvml.NVML_FEATURE_ENABLED if link < sum(g.nvlinks.values()) else 0
        ),
        "nvmlDeviceGetNvLinkRemotePciInfo": lambda g, link: SimpleNamespace(
            busId=by_uuid([u for u, n in g.nvlinks.items() for _ in range(n)][link]).bus
        ),
        "nvmlEventSetCreate": lambda: events,
        "nvmlEventSetFree": lambda s: None,
        "nvmlDeviceRegisterEvents": lambda g, mask, s: None,
    }
    for name, fn in calls.items():
        monkeypatch.setattr(pynvml, name, fn)
    return gpus


def test_one_failing_gpu_is_unhealthy_and_the_rest_register(fake_nvml: list[Gpu]) -> None:
    fake_nvml += [Gpu("GPU-a"), Gpu("GPU-b", broken=True), Gpu("GPU-c", name="Tesla T4", mib=15360)]
    devices = nvml.NvmlBackend().discover()
    assert [(d.uuid, d.index, d.healthy) for d in devices] == [
        ("GPU-a", 0, True),
        ("GPU-b", 1, False),
        ("GPU-c", 2, True),
    ]
    assert devices[0].memory_mib == 81559
    assert devices[2].model == "Tesla T4"
    assert "GPU is lost" in devices[1].reason


def test_init_failure_names_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise err(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    with pytest.raises(BackendInitError, match=r"NVML Shared Library Not Found.*driver"):
        nvml.NvmlBackend()


def test_links_count_nvlinks_to_each_peer(fake_nvml: list[Gpu]) -> None:
    fake_nvml += [
        Gpu("GPU-a", bus="00000000:01:00.0", nvlinks={"GPU-b": 2}),
        Gpu("GPU-b", bus="00000000:02:00.0", nvlinks={"GPU-a": 2}),
    ]
    backend = nvml.NvmlBackend()
    links = backend.links(backend.discover())
    assert links[("GPU-a", "GPU-b")] == Link("SingleSwitch", 2)
    assert links[("GPU-b", "GPU-a")] == Link("SingleSwitch", 2)


def test_xid_events_mark_the_device_and_application_xids_do_not(
    fake_nvml: list[Gpu], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvml += [Gpu("GPU-a"), Gpu("GPU-b")]
    script = [
        SimpleNamespace(
            eventType=pynvml.nvmlEventTypeXidCriticalError, eventData=43, device=fake_nvml[0]
        ),
        None,  # a timeout
        SimpleNamespace(
            eventType=pynvml.nvmlEventTypeXidCriticalError, eventData=79, device=fake_nvml[1]
        ),
    ]

    def wait(events: object, ms: int) -> object:
        item = script.pop(0)
        if item is None:
            raise err(pynvml.NVML_ERROR_TIMEOUT)
        return item

    monkeypatch.setattr(pynvml, "nvmlEventSetWait_v2", wait)
    backend = nvml.NvmlBackend()

    async def first() -> Any:
        stream = backend.health_events(backend.discover())
        change = await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        return change

    change = asyncio.run(first())
    assert (change.uuid, change.healthy, change.reason) == ("GPU-b", False, "XID 79")
