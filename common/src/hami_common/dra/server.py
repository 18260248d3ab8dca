"""A DRA driver's kubelet side: the registration and DRAPlugin gRPC services, on their sockets.

kubelet's plugin watcher finds ``<registry dir>/<driver>-reg.sock``, calls ``GetInfo`` (type
``DRAPlugin``, the driver's name, the endpoint of its DRA socket, ``v1.DRAPlugin``) and then
``NotifyRegistrationStatus``. It calls ``NodePrepareResources`` before a pod's containers start
and ``NodeUnprepareResources`` after they stop, per claim: a claim that fails gets its own
error string in the answer, the others are prepared all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
import grpc.aio

from hami_common.dra.api import dra_pb2 as dra
from hami_common.dra.api import registration_pb2 as reg
from hami_common.dra.api.services import (
    DRA_PLUGIN_TYPE,
    SUPPORTED_VERSION,
    Context,
    dra_handler,
    registration_handler,
)

log = logging.getLogger(__name__)
DIAL_TIMEOUT = 5.0


class PrepareError(Exception):
    """One claim cannot be prepared (or unprepared); the message goes back to kubelet."""


class DraDriver(Protocol):
    name: str
    """The driver name (the ResourceSlices' ``spec.driver``)."""

    async def prepare(self, claim: dra.Claim) -> list[dra.Device]:
        """Prepares one claim (idempotent). Raises `PrepareError` with a message."""
        ...

    async def unprepare(self, claim: dra.Claim) -> None:
        """Undoes `prepare` (idempotent: an unknown claim is already unprepared)."""
        ...


class DraService:
    """``DRAPlugin`` and ``Registration`` over one `DraDriver`."""

    def __init__(self, driver: DraDriver, endpoint: Path) -> None:
        self.driver = driver
        self.endpoint = endpoint
        self.registered: bool | None = None
        """What kubelet said in its last NotifyRegistrationStatus (None before it did)."""

    async def NodePrepareResources(  # noqa: N802
        self, request: dra.NodePrepareResourcesRequest, context: Context
    ) -> dra.NodePrepareResourcesResponse:
        out = dra.NodePrepareResourcesResponse()
        for claim in request.claims:
            try:
                devices = await self.driver.prepare(claim)
            except PrepareError as exc:
                log.warning("claim %s/%s: prepare failed: %s", claim.namespace, claim.name, exc)
                out.claims[claim.uid].error = str(exc)
                continue
            except Exception as exc:  # a bug or the host (disk full): this claim fails alone
                log.exception("claim %s/%s: prepare failed", claim.namespace, claim.name)
                out.claims[claim.uid].error = f"internal error ({type(exc).__name__}: {exc})"
                continue
            out.claims[claim.uid].devices.extend(devices)
        return out

    async def NodeUnprepareResources(  # noqa: N802
        self, request: dra.NodeUnprepareResourcesRequest, context: Context
    ) -> dra.NodeUnprepareResourcesResponse:
        out = dra.NodeUnprepareResourcesResponse()
        for claim in request.claims:
            entry = out.claims[claim.uid]
            try:
                await self.driver.unprepare(claim)
            except PrepareError as exc:
                log.warning("claim %s/%s: unprepare failed: %s", claim.namespace, claim.name, exc)
                entry.error = str(exc)
            except Exception as exc:
                log.exception("claim %s/%s: unprepare failed", claim.namespace, claim.name)
                entry.error = f"internal error ({type(exc).__name__}: {exc})"
        return out

    async def GetInfo(self, request: reg.InfoRequest, context: Context) -> reg.PluginInfo:  # noqa: N802
        return reg.PluginInfo(
            type=DRA_PLUGIN_TYPE,
            name=self.driver.name,
            endpoint=str(self.endpoint),
            supported_versions=[SUPPORTED_VERSION],
        )

    async def NotifyRegistrationStatus(  # noqa: N802
        self, request: reg.RegistrationStatus, context: Context
    ) -> reg.RegistrationStatusResponse:
        self.registered = request.plugin_registered
        if request.plugin_registered:
            log.info("kubelet registered driver %s", self.driver.name)
        else:
            log.error("kubelet refused driver %s: %s", self.driver.name, request.error)
        return reg.RegistrationStatusResponse()


@dataclass(frozen=True)
class SocketPaths:
    plugin: Path
    """The DRAPlugin socket: ``<plugins dir>/<driver>/dra.sock``."""
    registration: Path
    """``<registry dir>/<driver>-reg.sock``."""

    @classmethod
    def for_driver(cls, driver: str, plugins_dir: Path, registry_dir: Path) -> SocketPaths:
        return cls(plugins_dir / driver / "dra.sock", registry_dir / f"{driver}-reg.sock")


class DraServer:
    """Serves a `DraService` on both sockets (stale sockets removed first; self-dialled)."""

    def __init__(self, driver: DraDriver, paths: SocketPaths) -> None:
        self.paths = paths
        self.service = DraService(driver, paths.plugin)
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (dra_handler(self.service), registration_handler(self.service))
        )
        for path in (self.paths.plugin, self.paths.registration):
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            server.add_insecure_port(f"unix://{path}")
        await server.start()
        self._server = server
        for path in (self.paths.plugin, self.paths.registration):
            async with grpc.aio.insecure_channel(f"unix://{path}") as channel:
                await asyncio.wait_for(channel.channel_ready(), DIAL_TIMEOUT)
        log.info("DRA driver %s serving on %s", self.service.driver.name, self.paths.plugin)

    async def stop(self, grace: float = 1.0) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
        # the registration socket goes first: kubelet then deregisters the driver
        for path in (self.paths.registration, self.paths.plugin):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
