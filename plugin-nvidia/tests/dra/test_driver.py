"""The NVIDIA DRA driver over its real unix sockets, claims read from the fake API server:
the CDI spec and the limits file a claim's consumed capacity gives, idempotent prepare and
unprepare (across a restart too), and the refusals (over-commit, not allocated, not here)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
from hami_common.deviceplugin.testing import FakeBackend, device_spec
from hami_common.dra.api import dra_pb2 as dra
from hami_common.dra.api.services import DraStub
from hami_common.dra.testing import allocated_claim
from hami_common.k8s import PODS, RESOURCE_CLAIMS
from hami_common.k8s.testing import FakeApiServer
from hami_common.telemetry import TRACE_CONTEXT_ANNOTATION, in_memory_tracing
from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.dra.runtime import DraOptions, DraRuntime
from hami_plugin_nvidia.policy import NvidiaPolicy

DRIVER = "gpu.hami.io"


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="drv-", dir="/tmp"))  # short: unix socket paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _claim(api: FakeApiServer, name: str, *devices: tuple[str, Mapping[str, str]]) -> dra.Claim:
    api.add(RESOURCE_CLAIMS, allocated_claim(name, driver=DRIVER, pool="n1", devices=devices))
    return dra.Claim(namespace="default", name=name, uid=f"uid-{name}")


def _read(path: str) -> str:
    return Path(path).read_text()


def _exists(path: str | Path) -> bool:
    return Path(path).exists()


class Node:
    """The driver's runtime on node n1 (2 fake GPUs of 16384 MiB), with a client of its socket."""

    def __init__(
        self, root: Path, api: FakeApiServer, split_count: int = 10, tracer: Any = None
    ) -> None:
        self.root = root
        self.api = api
        self.tracer = tracer
        self.options = NvidiaOptions(split_count=split_count)
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Node:
        self.client = self.api.client()
        backend = self.backend = FakeBackend(device_spec(2, node="n1", memory_mib=16384), poll=0.02)
        policy = NvidiaPolicy(self.options, hook_path=self.root / "hook",
                              lock_dir=self.root / "lock")  # fmt: skip
        self.runtime = DraRuntime(
            policy, backend, self.client,
            DraOptions(node="n1", plugins_dir=self.root / "plugins",
                       registry_dir=self.root / "reg", cdi_dir=self.root / "cdi"),
            backend.discover(), tracer_provider=self.tracer,
        )  # fmt: skip
        self.task = asyncio.create_task(self.runtime.run(self._stop))
        for _ in range(200):
            if self.runtime.server.paths.plugin.exists():
                break
            await asyncio.sleep(0.02)
        self.channel = grpc.aio.insecure_channel(f"unix://{self.runtime.server.paths.plugin}")
        self.stub = DraStub(self.channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()
        self._stop.set()
        await asyncio.wait_for(self.task, 10)
        await self.client.aclose()

    async def prepare(self, *claims: dra.Claim) -> dra.NodePrepareResourcesResponse:
        return await self.stub.NodePrepareResources(
            dra.NodePrepareResourcesRequest(claims=claims), timeout=10
        )

    async def unprepare(self, *claims: dra.Claim) -> dra.NodeUnprepareResourcesResponse:
        return await self.stub.NodeUnprepareResources(
            dra.NodeUnprepareResourcesRequest(claims=claims), timeout=10
        )

    def spec(self, uid: str) -> dict[str, object]:
        return json.loads((self.root / "cdi" / f"hami.io-gpu_{uid}.json").read_text())  # type: ignore[no-any-return]


def test_prepare_writes_the_claims_limits_as_cdi_and_file(root: Path) -> None:
    api = FakeApiServer()

    async def body() -> None:
        async with Node(root, api) as node:
            claim = _claim(api, "c1", ("gpu-1", {"memory": "3000Mi", "cores": "30", "shares": "1"}))
            got = (await node.prepare(claim)).claims["uid-c1"]
            assert got.error == ""
            (device,) = got.devices
            assert (device.pool_name, device.device_name, device.share_id) == (
                "n1", "gpu-1", "c1-share-0"
            )  # fmt: skip
            assert list(device.request_names) == ["gpu"]
            assert list(device.cdi_device_ids) == ["hami.io/gpu=uid-c1-gpu-1"]
            spec = node.spec("uid-c1")
            assert spec["devices"] == [
                {"name": "uid-c1-gpu-1",
                 "containerEdits": {"env": ["CUDA_DEVICE_MEMORY_LIMIT_0=3000m"]}}
            ]  # fmt: skip
            common = spec["containerEdits"]
            assert isinstance(common, dict)
            env = dict(e.split("=", 1) for e in common["env"])
            assert env["NVIDIA_VISIBLE_DEVICES"] == "GPU-n1-0001"
            assert env["CUDA_DEVICE_SM_LIMIT"] == "30"
            mounts = {m["containerPath"]: m for m in common["mounts"]}
            limits = mounts["/etc/hami/vgpu-limits.conf"]
            assert limits["options"][0] == "ro"
            text = _read(limits["hostPath"])
            assert "CUDA_DEVICE_MEMORY_LIMIT_0=3000m\n" in text
            assert "CUDA_DEVICE_SM_LIMIT=30\n" in text
            assert "claim default/c1" in text
            assert "/etc/ld.so.preload" in mounts

            # the same claim again: the same answer, without reading the claim from the API
            # (the slice publisher may write meanwhile: only claim reads count)
            def claim_reads() -> int:
                return sum(1 for _, url in api.requests if "/resourceclaims/" in url)

            reads = claim_reads()
            again = (await node.prepare(claim)).claims["uid-c1"]
            assert list(again.devices) == list(got.devices)
            assert claim_reads() == reads
            # unprepare removes the spec and the files; twice is fine
            for _ in range(2):
                assert (await node.unprepare(claim)).claims["uid-c1"].error == ""
            assert not _exists(root / "cdi" / "hami.io-gpu_uid-c1.json")
            assert not _exists(limits["hostPath"])

    asyncio.run(body())


def test_a_device_allocated_whole_gets_all_its_memory_and_no_core_limit(root: Path) -> None:
    api = FakeApiServer()

    async def body() -> None:
        async with Node(root, api) as node:
            claim = _claim(api, "whole", ("gpu-0", {}))
            got = (await node.prepare(claim)).claims["uid-whole"]
            assert got.error == ""
            assert not got.devices[0].HasField("share_id")
            spec = node.spec("uid-whole")
            assert spec["devices"][0]["containerEdits"]["env"] == [  # type: ignore[index]
                "CUDA_DEVICE_MEMORY_LIMIT_0=16384m"
            ]

    asyncio.run(body())


def test_over_commit_is_refused_against_the_prepared_claims(root: Path) -> None:
    api = FakeApiServer()

    async def body() -> None:
        async with Node(root, api, split_count=3) as node:
            a = _claim(api, "a", ("gpu-0", {"memory": "10000Mi", "cores": "60"}))
            b = _claim(api, "b", ("gpu-0", {"memory": "8000Mi", "cores": "10"}))
            c = _claim(api, "c", ("gpu-0", {"memory": "4000Mi", "cores": "50"}))
            got = await node.prepare(a, b, c)
            assert got.claims["uid-a"].error == ""
            assert got.claims["uid-b"].error == (
                "claim default/b: device gpu-0 would be over-committed "
                "(18000/16384 MiB, 70/100 cores, 2/3 shares with the claims prepared)"
            )
            assert "110/100 cores" in got.claims["uid-c"].error
            assert not _exists(root / "cdi" / "hami.io-gpu_uid-b.json")
            # once a is unprepared, b fits
            await node.unprepare(a)
            assert (await node.prepare(b)).claims["uid-b"].error == ""

    asyncio.run(body())


def test_refusals_name_the_claim_and_the_reason(root: Path) -> None:
    api = FakeApiServer()

    async def body() -> None:
        async with Node(root, api) as node:
            missing = dra.Claim(namespace="default", name="gone", uid="uid-gone")
            elsewhere = _claim(api, "far", ("gpu-7", {}))
            bad = _claim(api, "bad", ("gpu-0", {"memory": "1.5"}))
            got = await node.prepare(missing, elsewhere, bad)
            assert got.claims["uid-gone"].error == "claim default/gone not found"
            assert got.claims["uid-far"].error == (
                "claim default/far: device gpu-7 is not on node n1"
            )
            assert got.claims["uid-bad"].error.startswith(
                "claim default/bad device gpu-0: consumedCapacity {'memory': '1.5'}"
            )

    asyncio.run(body())


def test_prepared_claims_survive_a_restart(root: Path) -> None:
    api = FakeApiServer()

    async def body() -> None:
        async with Node(root, api, split_count=2) as node:
            claim = _claim(api, "kept", ("gpu-0", {"memory": "2000Mi"}))
            first = (await node.prepare(claim)).claims["uid-kept"]
        (root / "cdi" / "hami.io-gpu_uid-kept.json").unlink()  # lost with a tmpfs
        async with Node(root, api, split_count=2) as node:
            again = (await node.prepare(claim)).claims["uid-kept"]
            assert list(again.devices) == list(first.devices)
            assert node.spec("uid-kept")["kind"] == "hami.io/gpu"
            # the restarted driver still counts it: a third share does not fit
            two = _claim(api, "two", ("gpu-0", {"memory": "1Mi"}))
            three = _claim(api, "three", ("gpu-0", {"memory": "1Mi"}))
            got = await node.prepare(two, three)
            assert got.claims["uid-two"].error == ""
            assert "3/2 shares" in got.claims["uid-three"].error
            await node.unprepare(claim)
            assert "uid-kept" not in node.runtime.driver.checkpoint.claims

    asyncio.run(body())


def test_the_slice_lists_shareable_devices_with_capacities(root: Path) -> None:
    api = FakeApiServer()

    async def body() -> None:
        async with Node(root, api, split_count=4):
            for _ in range(200):
                if api.of("resourceslices"):
                    break
                await asyncio.sleep(0.02)
            (published,) = api.of("resourceslices")
            spec = published["spec"]
            assert (spec["driver"], spec["nodeName"]) == (DRIVER, "n1")
            dev = spec["devices"][1]
            assert dev["name"] == "gpu-1"
            assert dev["allowMultipleAllocations"] is True
            assert dev["attributes"]["uuid"] == {"string": "GPU-n1-0001"}
            assert dev["attributes"]["type"] == {"string": "NVIDIA-Tesla V100-PCIE-32GB"}
            assert dev["capacity"]["memory"]["value"] == "16384Mi"
            assert dev["capacity"]["cores"]["requestPolicy"]["default"] == "0"
            assert dev["capacity"]["shares"]["value"] == "4"

    asyncio.run(body())


def test_prepare_is_a_span_in_the_trace_of_the_pod_the_claim_is_reserved_for(root: Path) -> None:
    api = FakeApiServer()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    api.add(PODS, {"metadata": {"name": "p", "namespace": "default", "annotations": {
        TRACE_CONTEXT_ANNOTATION: f"00-{trace_id}-00f067aa0ba902b7-01"}}})  # fmt: skip
    provider, exporter = in_memory_tracing("test")

    async def body() -> None:
        async with Node(root, api, tracer=provider) as node:
            claim = _claim(api, "traced", ("gpu-0", {"memory": "3000Mi", "cores": "30"}))
            api.obj(RESOURCE_CLAIMS, "traced", "default")["status"]["reservedFor"] = [
                {"resource": "pods", "name": "p", "uid": "uid-p"}
            ]
            assert (await node.prepare(claim)).claims["uid-traced"].error == ""
            over = _claim(api, "over", ("gpu-0", {"memory": "30000Mi"}))
            assert (await node.prepare(over)).claims["uid-over"].error

    asyncio.run(body())
    ok, failed = exporter.get_finished_spans()
    assert ok.name == "NodePrepareResources"
    assert f"{ok.context.trace_id:032x}" == trace_id
    attrs = dict(ok.attributes or {})
    assert attrs["k8s.pod.name"] == "p"
    assert attrs["hami.dra.claim"] == "traced"
    assert list(attrs["hami.dra.devices"]) == ["gpu-0"]  # type: ignore[arg-type]
    assert list(attrs["hami.dra.memory_mib"]) == [3000]  # type: ignore[arg-type]
    assert failed.status.status_code.name == "ERROR"
    assert "over-committed" in (failed.status.description or "")


def test_an_unhealthy_device_leaves_the_slice_and_comes_back(root: Path) -> None:
    api = FakeApiServer()

    def names() -> list[str]:
        slices = api.of("resourceslices")
        return [d["name"] for d in slices[0]["spec"]["devices"]] if slices else []

    async def wait_for(expected: list[str]) -> None:
        for _ in range(250):
            if names() == expected:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"slice devices {names()}, expected {expected}")

    async def body() -> None:
        async with Node(root, api) as node:
            await wait_for(["gpu-0", "gpu-1"])
            node.backend.set_health("GPU-n1-0000", False, "XID 79")
            await wait_for(["gpu-1"])
            generation = api.of("resourceslices")[0]["spec"]["pool"]["generation"]
            assert generation == 2  # the scheduler drops the older generation
            node.backend.set_health("GPU-n1-0000", True)
            await wait_for(["gpu-0", "gpu-1"])

    asyncio.run(body())
