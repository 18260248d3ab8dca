"""Typed gRPC wiring of the DRA plugin service (v1) and the plugin registration service, over
grpc.aio, written by hand with `hami_common.rpc` as the device-plugin API's
(`hami_common.deviceplugin.api.services`) so mypy strict checks servers and clients. Method
paths are upstream's."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

import grpc
import grpc.aio

from hami_common import rpc
from hami_common.dra.api import dra_pb2 as dra
from hami_common.dra.api import registration_pb2 as reg
from hami_common.rpc import unary_call, unary_handler

DRA_SERVICE = "k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin"
REGISTRATION_SERVICE = "pluginregistration.Registration"
DRA_PLUGIN_TYPE = "DRAPlugin"
"""``PluginInfo.type`` of a DRA driver."""
SUPPORTED_VERSION = "v1.DRAPlugin"
"""What a driver serving `DRA_SERVICE` advertises in ``PluginInfo.supported_versions``."""
PLUGINS_DIR = "/var/lib/kubelet/plugins"
REGISTRY_DIR = "/var/lib/kubelet/plugins_registry"


Context = rpc.Context


class DraServicer(Protocol):
    async def NodePrepareResources(  # noqa: N802
        self, request: dra.NodePrepareResourcesRequest, context: Context
    ) -> dra.NodePrepareResourcesResponse: ...

    async def NodeUnprepareResources(  # noqa: N802
        self, request: dra.NodeUnprepareResourcesRequest, context: Context
    ) -> dra.NodeUnprepareResourcesResponse: ...


class RegistrationServicer(Protocol):
    async def GetInfo(self, request: reg.InfoRequest, context: Context) -> reg.PluginInfo: ...  # noqa: N802

    async def NotifyRegistrationStatus(  # noqa: N802
        self, request: reg.RegistrationStatus, context: Context
    ) -> reg.RegistrationStatusResponse: ...


def dra_handler(servicer: DraServicer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        DRA_SERVICE,
        {
            "NodePrepareResources": unary_handler(
                servicer.NodePrepareResources,
                dra.NodePrepareResourcesRequest,
                dra.NodePrepareResourcesResponse,
            ),
            "NodeUnprepareResources": unary_handler(
                servicer.NodeUnprepareResources,
                dra.NodeUnprepareResourcesRequest,
                dra.NodeUnprepareResourcesResponse,
            ),
        },
    )


def registration_handler(servicer: RegistrationServicer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        REGISTRATION_SERVICE,
        {
            "GetInfo": unary_handler(servicer.GetInfo, reg.InfoRequest, reg.PluginInfo),
            "NotifyRegistrationStatus": unary_handler(
                servicer.NotifyRegistrationStatus,
                reg.RegistrationStatus,
                reg.RegistrationStatusResponse,
            ),
        },
    )


class DraStub:
    """Client of a DRA driver (what kubelet's DRA manager calls)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._prepare = unary_call(
            channel,
            DRA_SERVICE,
            "NodePrepareResources",
            dra.NodePrepareResourcesRequest,
            dra.NodePrepareResourcesResponse,
        )
        self._unprepare = unary_call(
            channel,
            DRA_SERVICE,
            "NodeUnprepareResources",
            dra.NodeUnprepareResourcesRequest,
            dra.NodeUnprepareResourcesResponse,
        )

    def NodePrepareResources(  # noqa: N802
        self, request: dra.NodePrepareResourcesRequest, timeout: float | None = None
    ) -> Awaitable[dra.NodePrepareResourcesResponse]:
        return self._prepare(request, timeout=timeout)

    def NodeUnprepareResources(  # noqa: N802
        self, request: dra.NodeUnprepareResourcesRequest, timeout: float | None = None
    ) -> Awaitable[dra.NodeUnprepareResourcesResponse]:
        return self._unprepare(request, timeout=timeout)


class RegistrationStub:
    """Client of a plugin's registration socket (what kubelet's plugin watcher calls)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._info = unary_call(
            channel, REGISTRATION_SERVICE, "GetInfo", reg.InfoRequest, reg.PluginInfo
        )
        self._notify = unary_call(
            channel,
            REGISTRATION_SERVICE,
            "NotifyRegistrationStatus",
            reg.RegistrationStatus,
            reg.RegistrationStatusResponse,
        )

    def GetInfo(  # noqa: N802
        self, request: reg.InfoRequest, timeout: float | None = None
    ) -> Awaitable[reg.PluginInfo]:
        return self._info(request, timeout=timeout)

    def NotifyRegistrationStatus(  # noqa: N802
        self, request: reg.RegistrationStatus, timeout: float | None = None
    ) -> Awaitable[reg.RegistrationStatusResponse]:
        return self._notify(request, timeout=timeout)
