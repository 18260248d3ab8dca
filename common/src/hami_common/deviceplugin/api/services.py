"""Typed gRPC wiring of the two v1beta1 services, over grpc.aio.

Written by hand with `hami_common.rpc` rather than generated (``grpc_python_out`` emits untyped
code): each method is one line of path, request and response type, so the servers and clients
here are checked by mypy strict. Method paths are upstream's (package ``v1beta1``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

import grpc
import grpc.aio

from hami_common import rpc
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.rpc import stream_call, stream_handler, unary_call, unary_handler

API_VERSION = "v1beta1"
DEVICE_PLUGIN_PATH = "/var/lib/kubelet/device-plugins/"
KUBELET_SOCKET = DEVICE_PLUGIN_PATH + "kubelet.sock"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"

REGISTRATION_SERVICE = "v1beta1.Registration"
DEVICE_PLUGIN_SERVICE = "v1beta1.DevicePlugin"


Context = rpc.Context


class RegistrationServicer(Protocol):
    """What kubelet serves on ``kubelet.sock``."""

    async def Register(self, request: pb.RegisterRequest, context: Context) -> pb.Empty: ...  # noqa: N802


class DevicePluginServicer(Protocol):
    """What a device plugin serves on its own socket."""

    async def GetDevicePluginOptions(  # noqa: N802
        self, request: pb.Empty, context: Context
    ) -> pb.DevicePluginOptions: ...

    def ListAndWatch(  # noqa: N802
        self, request: pb.Empty, context: Context
    ) -> AsyncIterator[pb.ListAndWatchResponse]: ...

    async def GetPreferredAllocation(  # noqa: N802
        self, request: pb.PreferredAllocationRequest, context: Context
    ) -> pb.PreferredAllocationResponse: ...

    async def Allocate(  # noqa: N802
        self, request: pb.AllocateRequest, context: Context
    ) -> pb.AllocateResponse: ...

    async def PreStartContainer(  # noqa: N802
        self, request: pb.PreStartContainerRequest, context: Context
    ) -> pb.PreStartContainerResponse: ...


def registration_handler(servicer: RegistrationServicer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        REGISTRATION_SERVICE,
        {"Register": unary_handler(servicer.Register, pb.RegisterRequest, pb.Empty)},
    )


def device_plugin_handler(servicer: DevicePluginServicer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        DEVICE_PLUGIN_SERVICE,
        {
            "GetDevicePluginOptions": unary_handler(
                servicer.GetDevicePluginOptions, pb.Empty, pb.DevicePluginOptions
            ),
            "ListAndWatch": stream_handler(
                servicer.ListAndWatch, pb.Empty, pb.ListAndWatchResponse
            ),
            "GetPreferredAllocation": unary_handler(
                servicer.GetPreferredAllocation,
                pb.PreferredAllocationRequest,
                pb.PreferredAllocationResponse,
            ),
            "Allocate": unary_handler(servicer.Allocate, pb.AllocateRequest, pb.AllocateResponse),
            "PreStartContainer": unary_handler(
                servicer.PreStartContainer,
                pb.PreStartContainerRequest,
                pb.PreStartContainerResponse,
            ),
        },
    )


def unix_target(socket_path: str) -> str:
    return f"unix://{socket_path}"


class RegistrationStub:
    """Client of kubelet's Registration service."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._register = unary_call(
            channel, REGISTRATION_SERVICE, "Register", pb.RegisterRequest, pb.Empty
        )

    def Register(  # noqa: N802
        self, request: pb.RegisterRequest, timeout: float | None = None
    ) -> Awaitable[pb.Empty]:
        return self._register(request, timeout=timeout)


class DevicePluginStub:
    """Client of a device plugin (what kubelet's device manager calls)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._options = unary_call(
            channel,
            DEVICE_PLUGIN_SERVICE,
            "GetDevicePluginOptions",
            pb.Empty,
            pb.DevicePluginOptions,
        )
        self._list_and_watch = stream_call(
            channel, DEVICE_PLUGIN_SERVICE, "ListAndWatch", pb.Empty, pb.ListAndWatchResponse
        )
        self._preferred = unary_call(
            channel,
            DEVICE_PLUGIN_SERVICE,
            "GetPreferredAllocation",
            pb.PreferredAllocationRequest,
            pb.PreferredAllocationResponse,
        )
        self._allocate = unary_call(
            channel, DEVICE_PLUGIN_SERVICE, "Allocate", pb.AllocateRequest, pb.AllocateResponse
        )
        self._pre_start = unary_call(
            channel,
            DEVICE_PLUGIN_SERVICE,
            "PreStartContainer",
            pb.PreStartContainerRequest,
            pb.PreStartContainerResponse,
        )

    def GetDevicePluginOptions(  # noqa: N802
        self, request: pb.Empty, timeout: float | None = None
    ) -> Awaitable[pb.DevicePluginOptions]:
        return self._options(request, timeout=timeout)

    def ListAndWatch(  # noqa: N802
        self, request: pb.Empty
    ) -> grpc.aio.UnaryStreamCall[Any, pb.ListAndWatchResponse]:
        return self._list_and_watch(request)

    def GetPreferredAllocation(  # noqa: N802
        self, request: pb.PreferredAllocationRequest, timeout: float | None = None
    ) -> Awaitable[pb.PreferredAllocationResponse]:
        return self._preferred(request, timeout=timeout)

    def Allocate(  # noqa: N802
        self, request: pb.AllocateRequest, timeout: float | None = None
    ) -> Awaitable[pb.AllocateResponse]:
        return self._allocate(request, timeout=timeout)

    def PreStartContainer(  # noqa: N802
        self, request: pb.PreStartContainerRequest, timeout: float | None = None
    ) -> Awaitable[pb.PreStartContainerResponse]:
        return self._pre_start(request, timeout=timeout)
