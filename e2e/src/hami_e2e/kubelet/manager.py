"""The device manager stand-in (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import hami_rustcore
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.api.services import (
    API_VERSION,
    HEALTHY,
    Context,
    DevicePluginStub,
    registration_handler,
    unix_target,
)
from hami_common.k8s import NODES, PODS, ApiError, KubeClient, list_then_watch

log = logging.getLogger(__name__)
Json = dict[str, Any]


@dataclass
class PluginEndpoint:
    """One registered plugin, as kubelet tracks it."""

    resource: str
    endpoint: str
    options: pb.DevicePluginOptions
    devices: dict[str, str] = field(default_factory=dict)
    """Device ID -> health, from the last ListAndWatch message."""
    updates: int = 0
    connected: bool = False
    channel: grpc.aio.Channel | None = None
    task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> list[str]:
        return [d for d, h in self.devices.items() if h == HEALTHY]


@dataclass(frozen=True)
class Allocation:
    """The answer to one container's Allocate (``response`` or ``error``)."""

    namespace: str
    pod: str
    container: str
    device_ids: list[str]
    response: pb.ContainerAllocateResponse | None
    error: str | None
    seconds: float
    uid: str = ""


def _merged(a: Allocation, b: Allocation) -> Allocation:
    """What the container starts with when kubelet allocated it several resources (as kubelet
    does: every plugin's env, mounts and device nodes; the first error stands)."""
    response: pb.ContainerAllocateResponse | None = None
    if a.response is not None or b.response is not None:
        response = pb.ContainerAllocateResponse()
        for part in (a.response, b.response):
            if part is not None:
                response.MergeFrom(part)
    return Allocation(a.namespace, a.pod, a.container, [*a.device_ids, *b.device_ids], response,
                      a.error or b.error, a.seconds + b.seconds, a.uid)  # fmt: skip


def _requests(container: Json, resource: str) -> int:
    """The container's count of ``resource``, a quantity as kubelet reads it (the API server
    writes ``3000`` back as ``3k``)."""
    res = container.get("resources") or {}
    value = (res.get("limits") or {}).get(resource) or (res.get("requests") or {}).get(resource)
    try:
        return hami_rustcore.quantity_value(str(value)) if value is not None else 0
    except hami_rustcore.DecodeError:
        return 0


class DeviceManager:
    def __init__(
        self,
        node: str,
        plugin_dir: Path,
        client: KubeClient | None = None,
        *,
        on_allocation: Callable[[Allocation], None] | None = None,
        on_release: Callable[[str], None] | None = None,
    ) -> None:
        """``on_allocation`` is told of every container's Allocate answer (or error),
        ``on_release`` of the UID of every pod deleted from the node."""
        self.node = node
        self.plugin_dir = plugin_dir
        self.socket = plugin_dir / "kubelet.sock"
        self.client = client
        self.on_allocation = on_allocation
        self.on_release = on_release
        self.plugins: dict[str, PluginEndpoint] = {}
        self.allocations: dict[tuple[str, str, str], Allocation] = {}
        self.registrations: list[pb.RegisterRequest] = []
        self._assigned: dict[str, set[str]] = {}
        self._by_pod: dict[str, list[tuple[str, list[str]]]] = {}
        self._handled: set[str] = set()
        # pods whose every container and resource went through Allocate (namespace, name)
        self.admitted: set[tuple[str, str]] = set()
        self._server: grpc.aio.Server | None = None
        self._watch: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, *, watch_pods: bool = True) -> None:
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((registration_handler(self),))
        server.add_insecure_port(unix_target(str(self.socket)))
        await server.start()
        self._server = server
        if watch_pods and self.client is not None and self._watch is None:
            self._watch = asyncio.create_task(self._watch_pods(), name=f"kubelet-{self.node}")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        for plugin in list(self.plugins.values()):
            await self._disconnect(plugin)
        if self._server is not None:
            await self._server.stop(0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    async def restart(self) -> None:
        """What a kubelet restart does to plugins: every socket in the folder is removed and
        ``kubelet.sock`` is created anew; plugins must notice and register again."""
        watching = self._watch is not None
        await self.stop()
        for path in self.plugin_dir.glob("*.sock"):
            path.unlink(missing_ok=True)
        self.plugins.clear()
        await self.start(watch_pods=watching)

    async def __aenter__(self) -> DeviceManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- Registration service ------------------------------------------------------------------

    async def Register(self, request: pb.RegisterRequest, context: Context) -> pb.Empty:  # noqa: N802
        if request.version != API_VERSION:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"unsupported version {request.version!r}"
            )
        self.registrations.append(request)
        old = self.plugins.get(request.resource_name)
        if old is not None:
            await self._disconnect(old)
        plugin = PluginEndpoint(request.resource_name, request.endpoint, request.options)
        self.plugins[request.resource_name] = plugin
        plugin.task = asyncio.create_task(self._follow(plugin))
        return pb.Empty()

    async def _disconnect(self, plugin: PluginEndpoint) -> None:
        if plugin.task is not None:
            plugin.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await plugin.task
        if plugin.channel is not None:
            await plugin.channel.close()
        plugin.connected = False

    async def _follow(self, plugin: PluginEndpoint) -> None:
        """ListAndWatch until the plugin goes away; then its devices count as unhealthy."""
        plugin.channel = grpc.aio.insecure_channel(
            unix_target(str(self.plugin_dir / plugin.endpoint))
        )
        stub = DevicePluginStub(plugin.channel)
        try:
            plugin.options = await stub.GetDevicePluginOptions(pb.Empty(), timeout=5)
            plugin.connected = True
            async for message in stub.ListAndWatch(pb.Empty()):
                plugin.devices = {d.ID: d.health for d in message.devices}
                plugin.updates += 1
                await self._publish(plugin)
        except grpc.aio.AioRpcError as exc:
            log.info("plugin %s: stream ended (%s)", plugin.resource, exc.code())
        plugin.connected = False
        plugin.devices = dict.fromkeys(plugin.devices, "Unhealthy")
        await self._publish(plugin)

    async def _publish(self, plugin: PluginEndpoint) -> None:
        async with self._changed:
            self._changed.notify_all()
        if self.client is None:
            return
        status = {
            "status": {
                "capacity": {plugin.resource: str(len(plugin.devices))},
                "allocatable": {plugin.resource: str(len(plugin.healthy))},
            }
        }
        try:
            await self.client.patch(NODES, self.node, status, subresource="status")
        except ApiError as exc:
            log.warning("node %s: could not publish %s: %s", self.node, plugin.resource, exc)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 30.0) -> None:
        """Waits until ``predicate()`` holds (re-checked on every plugin update)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), within)

    # -- pods ----------------------------------------------------------------------------------

    async def _watch_pods(self) -> None:
        assert self.client is not None  # noqa: S101
        async for event in list_then_watch(
            self.client, PODS, field_selector=f"spec.nodeName={self.node}"
        ):
            pods = event.object.get("items", []) if event.type == "SYNC" else [event.object]
            if event.type == "DELETED":
                self.release(event.object.get("metadata", {}).get("uid", ""))
            elif event.type in ("SYNC", "ADDED", "MODIFIED"):
                for pod in pods:
                    uid = pod.get("metadata", {}).get("uid", "")
                    if uid and uid not in self._handled:
                        self._handled.add(uid)
                        await self.admit(pod)

    async def admit(self, pod: Json) -> list[Allocation]:
        """kubelet's admission of a bound pod: Allocate per container, per resource."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        out = []
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            for plugin in list(self.plugins.values()):
                count = _requests(container, plugin.resource)
                if count:
                    out.append(await self._allocate(meta, container, plugin, count))
        async with self._changed:
            self.admitted.add((str(meta.get("namespace", "")), str(meta.get("name", ""))))
            self._changed.notify_all()
        return out

    def admitted_allocation(self, namespace: str, pod: str, container: str) -> Allocation | None:
        """The container's allocation once the whole pod is admitted: every resource's Allocate
        merged (a pod asking for a vendor's count, memory and cores resources gets one Allocate
        per resource, in the plugins' registration order). None before, or for another node's."""
        if (namespace, pod) not in self.admitted:
            return None
        return self.allocations.get((namespace, pod, container))

    async def _allocate(
        self, meta: Json, container: Json, plugin: PluginEndpoint, count: int
    ) -> Allocation:
        taken = self._assigned.setdefault(plugin.resource, set())
        free = [d for d in plugin.healthy if d not in taken]
        ids = free[:count]
        started = time.perf_counter()
        response: pb.ContainerAllocateResponse | None = None
        error: str | None = None
        if len(ids) < count or plugin.channel is None:
            error = f"insufficient {plugin.resource}: want {count}, {len(free)} free"
        else:
            stub = DevicePluginStub(plugin.channel)
            try:
                if plugin.options.get_preferred_allocation_available:
                    pref = await stub.GetPreferredAllocation(
                        pb.PreferredAllocationRequest(
                            container_requests=[
                                pb.ContainerPreferredAllocationRequest(
                                    available_deviceIDs=free, allocation_size=count
                                )
                            ]
                        ),
                        timeout=10,
                    )
                    ids = list(pref.container_responses[0].deviceIDs) or ids
                answer = await stub.Allocate(
                    pb.AllocateRequest(
                        container_requests=[pb.ContainerAllocateRequest(devices_ids=ids)]
                    ),
                    timeout=30,
                )
                response = answer.container_responses[0]
                taken.update(ids)
                self._by_pod.setdefault(str(meta.get("uid", "")), []).append((plugin.resource, ids))
            except grpc.aio.AioRpcError as exc:
                error = f"{exc.code().name}: {exc.details()}"
        uid = str(meta.get("uid", ""))
        record = Allocation(
            str(meta.get("namespace", "")),
            str(meta.get("name", "")),
            str(container.get("name", "")),
            ids,
            response,
            error,
            time.perf_counter() - started,
            uid,
        )
        key = (record.namespace, record.pod, record.container)
        earlier = self.allocations.get(key)
        if earlier is not None and uid and earlier.uid == uid:
            record = _merged(earlier, record)  # one container, several resources
        self.allocations[key] = record
        if self.on_allocation is not None:
            self.on_allocation(record)
        return record

    def release(self, uid: str) -> None:
        """A deleted pod's devices are free again (kubelet's checkpoint forgets them)."""
        for resource, ids in self._by_pod.pop(uid, []):
            self._assigned.get(resource, set()).difference_update(ids)
        if self.on_release is not None:
            self.on_release(uid)

    async def wait_allocation(
        self, namespace: str, pod: str, container: str, within: float = 30.0
    ) -> Allocation:
        key = (namespace, pod, container)
        await self.wait_for(
            lambda: (namespace, pod) in self.admitted and key in self.allocations, within
        )
        return self.allocations[key]
