"""The DRA framework's kubelet side over real unix sockets: registration as kubelet's plugin
watcher sees it, and per-claim answers of prepare and unprepare."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc.aio
import pytest
from hami_common.dra.api import dra_pb2 as dra
from hami_common.dra.api import registration_pb2 as reg
from hami_common.dra.api.services import DraStub, RegistrationStub
from hami_common.dra.server import DraServer, PrepareError, SocketPaths


class Driver:
    name = "gpu.example.com"

    def __init__(self) -> None:
        self.unprepared: list[str] = []

    async def prepare(self, claim: dra.Claim) -> list[dra.Device]:
        if claim.name == "bad":
            raise PrepareError(f"claim {claim.namespace}/{claim.name} is not allocated")
        if claim.name == "disk":
            raise OSError(28, "No space left on device")
        return [
            dra.Device(
                request_names=["gpu"],
                pool_name="n1",
                device_name="gpu-0",
                cdi_device_ids=[f"example.com/gpu={claim.uid}"],
                share_id="s1",
            )
        ]

    async def unprepare(self, claim: dra.Claim) -> None:
        if claim.name == "bad":
            raise PrepareError("cannot")
        self.unprepared.append(claim.uid)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dra-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_registration_and_per_claim_answers(sock_dir: Path) -> None:
    paths = SocketPaths.for_driver("gpu.example.com", sock_dir / "plugins", sock_dir / "reg")
    assert paths.registration == sock_dir / "reg" / "gpu.example.com-reg.sock"
    assert paths.plugin == sock_dir / "plugins" / "gpu.example.com" / "dra.sock"
    driver = Driver()

    async def body() -> None:
        server = DraServer(driver, paths)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix://{paths.registration}") as ch:
                info = await RegistrationStub(ch).GetInfo(reg.InfoRequest(), timeout=5)
                assert (info.type, info.name, info.endpoint) == (
                    "DRAPlugin",
                    "gpu.example.com",
                    str(paths.plugin),
                )
                assert list(info.supported_versions) == ["v1.DRAPlugin"]
                await RegistrationStub(ch).NotifyRegistrationStatus(
                    reg.RegistrationStatus(plugin_registered=True), timeout=5
                )
            assert server.service.registered is True
            async with grpc.aio.insecure_channel(f"unix://{info.endpoint}") as ch:
                stub = DraStub(ch)
                good = dra.Claim(namespace="ns", name="good", uid="u1")
                bad = dra.Claim(namespace="ns", name="bad", uid="u2")
                disk = dra.Claim(namespace="ns", name="disk", uid="u3")
                got = await stub.NodePrepareResources(
                    dra.NodePrepareResourcesRequest(claims=[good, bad, disk]), timeout=5
                )
                assert got.claims["u3"].error == (
                    "internal error (OSError: [Errno 28] No space left on device)"
                )
                assert got.claims["u1"].error == ""
                device = got.claims["u1"].devices[0]
                assert (device.device_name, device.share_id) == ("gpu-0", "s1")
                assert list(device.cdi_device_ids) == ["example.com/gpu=u1"]
                # one failing claim is answered with its own error; the other is prepared
                assert got.claims["u2"].error == "claim ns/bad is not allocated"
                assert not got.claims["u2"].devices
                un = await stub.NodeUnprepareResources(
                    dra.NodeUnprepareResourcesRequest(claims=[good, bad]), timeout=5
                )
                assert (un.claims["u1"].error, un.claims["u2"].error) == ("", "cannot")
            assert driver.unprepared == ["u1"]
        finally:
            await server.stop()
        # the sockets are gone: kubelet deregisters the driver
        assert not paths.registration.exists()
        assert not paths.plugin.exists()

    asyncio.run(body())


def test_a_stale_socket_is_replaced(sock_dir: Path) -> None:
    paths = SocketPaths.for_driver("d.example.com", sock_dir / "p", sock_dir / "r")
    paths.registration.parent.mkdir(parents=True)
    paths.registration.write_text("stale")

    async def body() -> None:
        server = DraServer(Driver(), paths)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix://{paths.registration}") as ch:
                info = await RegistrationStub(ch).GetInfo(reg.InfoRequest(), timeout=5)
            assert info.name == "gpu.example.com"
        finally:
            await server.stop()

    asyncio.run(body())
