"""Typed gRPC wiring for kubelet's APIs (device plugin v1beta1, DRA v1, plugin registration),
over grpc.aio.

Their services are written by hand rather than generated (``grpc_python_out`` emits untyped
code): with these helpers each method is one line of name, request and response type, and the
servers and clients are checked by mypy strict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

Context = grpc.aio.ServicerContext[object, object]


def unary_handler(
    behavior: Callable[[Req, Context], Awaitable[Resp]], req: type[Req], resp: type[Resp]
) -> grpc.RpcMethodHandler[Req, Resp]:
    """The server side of a unary method."""
    return grpc.unary_unary_rpc_method_handler(
        behavior, request_deserializer=req.FromString, response_serializer=resp.SerializeToString
    )


def stream_handler(
    behavior: Callable[[Req, Context], AsyncIterator[Resp]], req: type[Req], resp: type[Resp]
) -> grpc.RpcMethodHandler[Req, Resp]:
    """The server side of a method that answers with a stream."""
    return grpc.unary_stream_rpc_method_handler(
        behavior, request_deserializer=req.FromString, response_serializer=resp.SerializeToString
    )


def unary_call(
    channel: grpc.aio.Channel, service: str, method: str, req: type[Req], resp: type[Resp]
) -> grpc.aio.UnaryUnaryMultiCallable[Req, Resp]:
    """The client side of unary method ``/<service>/<method>``."""
    return channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=req.SerializeToString,
        response_deserializer=resp.FromString,
    )


def stream_call(
    channel: grpc.aio.Channel, service: str, method: str, req: type[Req], resp: type[Resp]
) -> grpc.aio.UnaryStreamMultiCallable[Req, Resp]:
    """The client side of streaming method ``/<service>/<method>``."""
    return channel.unary_stream(
        f"/{service}/{method}",
        request_serializer=req.SerializeToString,
        response_deserializer=resp.FromString,
    )
