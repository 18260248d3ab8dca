"""Typed gRPC wiring of the DRA plugin service (v1) and the plugin registration service, over
grpc.aio, written by hand as the device-plugin API's (`hami_common.deviceplugin.api.services`)
so mypy strict checks servers and clients. Method paths are upstream's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import grpc
import grpc.aio

from hami_common.dra.api import dra_pb2 as dra
from hami_common.dra.api import registration_pb2 as reg

DRA_SERVICE = "k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin"
REGISTRATION_SERVICE = "pluginregistration.Registration"
DRA_PLUGIN_TYPE = "DRAPlugin"
"""``PluginInfo.type`` of a DRA driver."""
SUPPORTED_VERSION = "v1.DRAPlugin"
"""What a driver serving `DRA_SERVICE` advertises in ``PluginInfo.supported_versions``."""
PLUGINS_DIR = "/var/lib/kubelet/plugins"
REGISTRY_DIR = "/var/lib/kubelet/plugins_registry"

Context = grpc.aio.ServicerContext[object, object]
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


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


def _unary(
    behavior: Callable[[_Req, Context], Awaitable[_Resp]],
    req: type[_Req],
    resp: type[_Resp],
) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=req.FromString,  # type: ignore[attr-defined]
        response_serializer=resp.SerializeToString,  # type: ignore[attr-defined]
    )


def dra_handler(servicer: DraServicer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        DRA_SERVICE,
        {
            "NodePrepareResources": _unary(
                servicer.NodePrepareResources,
                dra.NodePrepareResourcesRequest,
                dra.NodePrepareResourcesResponse,
            ),
            "NodeUnprepareResources": _unary(
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
            "GetInfo": _unary(servicer.GetInfo, reg.InfoRequest, reg.PluginInfo),
            "NotifyRegistrationStatus": _unary(
                servicer.NotifyRegistrationStatus,
                reg.RegistrationStatus,
                reg.RegistrationStatusResponse,
            ),
        },
    )


class DraStub:
    """Client of a DRA driver (what kubelet's DRA manager calls)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        base = f"/{DRA_SERVICE}/"
        self._prepare = channel.unary_unary(
            base + "NodePrepareResources",
            request_serializer=dra.NodePrepareResourcesRequest.SerializeToString,
            response_deserializer=dra.NodePrepareResourcesResponse.FromString,
        )
        self._unprepare = channel.unary_unary(
            base + "NodeUnprepareResources",
            request_serializer=dra.NodeUnprepareResourcesRequest.SerializeToString,
            response_deserializer=dra.NodeUnprepareResourcesResponse.FromString,
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
        base = f"/{REGISTRATION_SERVICE}/"
        self._info = channel.unary_unary(
            base + "GetInfo",
            request_serializer=reg.InfoRequest.SerializeToString,
            response_deserializer=reg.PluginInfo.FromString,
        )
        self._notify = channel.unary_unary(
            base + "NotifyRegistrationStatus",
            request_serializer=reg.RegistrationStatus.SerializeToString,
            response_deserializer=reg.RegistrationStatusResponse.FromString,
        )

    def GetInfo(  # noqa: N802
        self, request: reg.InfoRequest, timeout: float | None = None
    ) -> Awaitable[reg.PluginInfo]:
        return self._info(request, timeout=timeout)

    def NotifyRegistrationStatus(  # noqa: N802
        self, request: reg.RegistrationStatus, timeout: float | None = None
    ) -> Awaitable[reg.RegistrationStatusResponse]:
        return self._notify(request, timeout=timeout)
