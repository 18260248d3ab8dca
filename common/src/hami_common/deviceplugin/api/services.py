"""Typed gRPC wiring of the two v1beta1 services, over grpc.aio.

Written by hand rather than generated (``grpc_python_out`` emits untyped code): each method is
one line of path, request and response type, so the servers and clients here are checked by
mypy strict. Method paths are upstream's (package ``v1beta1``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

import grpc
import grpc.aio

from hami_common.deviceplugin.api import api_pb2 as pb

API_VERSION = "v1beta1"
DEVICE_PLUGIN_PATH = "/var/lib/kubelet/device-plugins/"
KUBELET_SOCKET = DEVICE_PLUGIN_PATH + "kubelet.sock"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"

REGISTRATION_SERVICE = "v1beta1.Registration"
DEVICE_PLUGIN_SERVICE = "v1beta1.DevicePlugin"

Context = grpc.aio.ServicerContext[object, object]


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
        {
            "Register": grpc.unary_unary_rpc_method_handler(
                servicer.Register,
                request_deserializer=pb.RegisterRequest.FromString,
                response_serializer=pb.Empty.SerializeToString,
            )
        },
    )


def device_plugin_handler(servicer: DevicePluginServicer) -> grpc.GenericRpcHandler:
    def unary(behavior: object, req: type[object], resp: type[object]) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
        return grpc.unary_unary_rpc_method_handler(
            behavior,  # type: ignore[arg-type]
            request_deserializer=req.FromString,  # type: ignore[attr-defined]
            response_serializer=resp.SerializeToString,  # type: ignore[attr-defined]
        )

    return grpc.method_handlers_generic_handler(
        DEVICE_PLUGIN_SERVICE,
        {
            "GetDevicePluginOptions": unary(
                servicer.GetDevicePluginOptions, pb.Empty, pb.DevicePluginOptions
            ),
            "ListAndWatch": grpc.unary_stream_rpc_method_handler(
                servicer.ListAndWatch,
                request_deserializer=pb.Empty.FromString,
                response_serializer=pb.ListAndWatchResponse.SerializeToString,
            ),
            "GetPreferredAllocation": unary(
                servicer.GetPreferredAllocation,
                pb.PreferredAllocationRequest,
                pb.PreferredAllocationResponse,
            ),
            "Allocate": unary(servicer.Allocate, pb.AllocateRequest, pb.AllocateResponse),
            "PreStartContainer": unary(
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
        self._register = channel.unary_unary(
            f"/{REGISTRATION_SERVICE}/Register",
            request_serializer=pb.RegisterRequest.SerializeToString,
            response_deserializer=pb.Empty.FromString,
        )

    def Register(  # noqa: N802
        self, request: pb.RegisterRequest, timeout: float | None = None
    ) -> Awaitable[pb.Empty]:
        return self._register(request, timeout=timeout)


class DevicePluginStub:
    """Client of a device plugin (what kubelet's device manager calls)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        base = f"/{DEVICE_PLUGIN_SERVICE}/"
        self._options = channel.unary_unary(
            base + "GetDevicePluginOptions",
            request_serializer=pb.Empty.SerializeToString,
            response_deserializer=pb.DevicePluginOptions.FromString,
        )
        self._list_and_watch = channel.unary_stream(
            base + "ListAndWatch",
            request_serializer=pb.Empty.SerializeToString,
            response_deserializer=pb.ListAndWatchResponse.FromString,
        )
        self._preferred = channel.unary_unary(
            base + "GetPreferredAllocation",
            request_serializer=pb.PreferredAllocationRequest.SerializeToString,
            response_deserializer=pb.PreferredAllocationResponse.FromString,
        )
        self._allocate = channel.unary_unary(
            base + "Allocate",
            request_serializer=pb.AllocateRequest.SerializeToString,
            response_deserializer=pb.AllocateResponse.FromString,
        )
        self._pre_start = channel.unary_unary(
            base + "PreStartContainer",
            request_serializer=pb.PreStartContainerRequest.SerializeToString,
            response_deserializer=pb.PreStartContainerResponse.FromString,
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
