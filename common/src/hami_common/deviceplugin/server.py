"""The kubelet-facing side: the DevicePlugin gRPC service and the upstream lifecycle.

Lifecycle (as the upstream plugins do it): remove a stale socket, serve on
``<device-plugin dir>/<socket name>``, dial our own socket to confirm it answers, then register
with kubelet. kubelet deletes every socket in the folder when it restarts and re-creates
``kubelet.sock``; the watcher notices either change and serves and registers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import grpc
import grpc.aio

from hami_common.deviceplugin.allocator import AllocationFailed, NoPendingPod, PodAllocator
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.api.services import (
    API_VERSION,
    Context,
    RegistrationStub,
    device_plugin_handler,
    unix_target,
)
from hami_common.deviceplugin.devices import DeviceTable, physical_id
from hami_common.deviceplugin.vendor import CapacityResource, ServedResource
from hami_common.k8s import ApiError

log = logging.getLogger(__name__)

DIAL_TIMEOUT = 5.0


class DevicePluginService:
    """The five RPCs of ``v1beta1.DevicePlugin``."""

    def __init__(
        self, table: DeviceTable, policy: ServedResource, allocator: PodAllocator | None
    ) -> None:
        self.table = table
        self.policy = policy
        self.allocator = allocator
        self._stopping = asyncio.Event()

    def stop_streams(self) -> None:
        self._stopping.set()

    async def GetDevicePluginOptions(  # noqa: N802
        self, request: pb.Empty, context: Context
    ) -> pb.DevicePluginOptions:
        return pb.DevicePluginOptions(
            pre_start_required=False,
            get_preferred_allocation_available=self.policy.preferred_allocation,
        )

    async def ListAndWatch(  # noqa: N802
        self, request: pb.Empty, context: Context
    ) -> AsyncIterator[pb.ListAndWatchResponse]:
        seen = self.table.version
        yield self.table.list_response()
        stopping = asyncio.ensure_future(self._stopping.wait())
        change: asyncio.Future[int] | None = None
        try:
            while not self._stopping.is_set():
                change = asyncio.ensure_future(self.table.wait_change(seen))
                done, _ = await asyncio.wait(
                    {change, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if change not in done:
                    return
                seen = change.result()
                yield self.table.list_response()
        finally:
            # the stream ends on stop or when kubelet goes away: leave no waiter behind
            stopping.cancel()
            if change is not None:
                change.cancel()

    async def GetPreferredAllocation(  # noqa: N802
        self, request: pb.PreferredAllocationRequest, context: Context
    ) -> pb.PreferredAllocationResponse:
        uuids = [d.uuid for d in self.table.devices]
        ids = {i for c in request.container_requests for i in c.available_deviceIDs}
        physical: Mapping[str, str] = {i: physical_id(i, uuids) for i in ids}
        if self.allocator is None:
            response = pb.PreferredAllocationResponse()
            for creq in request.container_requests:
                chosen = list(creq.must_include_deviceIDs)
                chosen += [d for d in creq.available_deviceIDs if d not in chosen]
                response.container_responses.add(deviceIDs=chosen[: creq.allocation_size])
            return response
        return await self.allocator.preferred(request, physical)

    async def Allocate(  # noqa: N802
        self, request: pb.AllocateRequest, context: Context
    ) -> pb.AllocateResponse:
        if self.allocator is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no API server: cannot allocate")
        assert self.allocator is not None  # noqa: S101 (abort raises)
        try:
            return await self.allocator.allocate(request)
        except NoPendingPod as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except AllocationFailed as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ApiError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"API server: {exc}")
        raise AssertionError("unreachable")

    async def PreStartContainer(  # noqa: N802
        self, request: pb.PreStartContainerRequest, context: Context
    ) -> pb.PreStartContainerResponse:
        return pb.PreStartContainerResponse()


class CapacityService(DevicePluginService):
    """A resource served beside the vendor's own (`CapacityResource`): its Allocate answers
    each container with the resource's ``respond`` for the IDs kubelet chose, or with nothing
    (the vendor's own resource doing the work)."""

    def __init__(self, table: DeviceTable, resource: CapacityResource) -> None:
        super().__init__(table, resource, None)
        self.resource = resource

    async def Allocate(  # noqa: N802
        self, request: pb.AllocateRequest, context: Context
    ) -> pb.AllocateResponse:
        response = pb.AllocateResponse()
        for creq in request.container_requests:
            if self.resource.respond is None:
                response.container_responses.add()
            else:
                response.container_responses.append(self.resource.respond(list(creq.devices_ids)))
        return response


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_ctime_ns


class PluginServer:
    """Serves one `DevicePluginService` and keeps it registered with kubelet."""

    def __init__(
        self,
        service: DevicePluginService,
        plugin_dir: Path,
        *,
        register: bool = True,
        kubelet_socket: str = "kubelet.sock",
        poll_interval: float = 1.0,
    ) -> None:
        self.service = service
        self.policy = service.policy
        self.plugin_dir = plugin_dir
        self.socket_path = plugin_dir / self.policy.socket_name
        self.kubelet_socket = plugin_dir / kubelet_socket
        self.register_with_kubelet = register
        self.poll_interval = poll_interval
        self.registrations = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        """Serve, self-dial, and register (raises when kubelet refuses or cannot be reached)."""
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((device_plugin_handler(self.service),))
        server.add_insecure_port(unix_target(str(self.socket_path)))
        await server.start()
        self._server = server
        async with grpc.aio.insecure_channel(unix_target(str(self.socket_path))) as channel:
            await asyncio.wait_for(channel.channel_ready(), DIAL_TIMEOUT)
        log.info("serving %s on %s", self.policy.resource_name, self.socket_path)
        if self.register_with_kubelet:
            await self.register()

    async def register(self) -> None:
        request = pb.RegisterRequest(
            version=API_VERSION,
            endpoint=self.policy.socket_name,
            resource_name=self.policy.resource_name,
            options=pb.DevicePluginOptions(
                get_preferred_allocation_available=self.policy.preferred_allocation
            ),
        )
        async with grpc.aio.insecure_channel(unix_target(str(self.kubelet_socket))) as channel:
            await RegistrationStub(channel).Register(request, timeout=DIAL_TIMEOUT)
        self.registrations += 1
        log.info("registered %s with kubelet (%s)", self.policy.resource_name, self.kubelet_socket)

    async def stop(self, grace: float = 1.0) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop``; start again whenever kubelet restarts (its socket is
        re-created) or our socket disappears. A failed start is retried, never fatal."""
        kubelet_id = _identity(self.kubelet_socket)
        started = False
        while not stop.is_set():
            if not started:
                try:
                    await self.stop()
                    await self.start()
                    started = True
                except (grpc.aio.AioRpcError, TimeoutError, OSError) as exc:
                    log.warning("device plugin start failed (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval)
            current = _identity(self.kubelet_socket)
            if current != kubelet_id:
                kubelet_id = current
                if current is not None:
                    log.info("kubelet.sock was re-created: serving and registering again")
                    started = False
            if started and _identity(self.socket_path) is None:
                log.info("our socket %s was removed: serving again", self.socket_path)
                started = False
        self.service.stop_streams()
        await self.stop()
