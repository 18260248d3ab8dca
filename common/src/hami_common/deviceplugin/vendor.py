"""What a vendor plugs into the framework: names, the register annotation, Allocate answers.

`VendorPolicy` is pure policy (no hardware, no API server); the framework does the gRPC
lifecycle, node registration and the allocation protocol around it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import hami_rustcore

from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.backend import Links, PhysicalDevice
from hami_common.k8s import KubeClient

Json = dict[str, Any]


@dataclass(frozen=True)
class ContainerContext:
    """One container's share of an Allocate call."""

    pod: Json
    index: int
    """Position in the pod's device annotation: init containers first, then app containers."""
    container: Json
    """The container's spec (name, env, resources...)."""
    devices: Sequence[hami_rustcore.AllocDevice]
    """This container's entry of the to-allocate annotation."""
    device_ids: Sequence[str]
    """The virtual IDs kubelet chose (only their count matters)."""

    @property
    def pod_uid(self) -> str:
        return str(self.pod.get("metadata", {}).get("uid", ""))

    @property
    def container_name(self) -> str:
        return str(self.container.get("name", ""))

    def env(self) -> Mapping[str, str]:
        """The container's literal env values (valueFrom entries are skipped)."""
        return {
            str(e["name"]): str(e["value"])
            for e in self.container.get("env") or []
            if isinstance(e, dict) and "name" in e and isinstance(e.get("value"), str)
        }

    def limits(self) -> Mapping[str, str]:
        return {
            str(k): str(v)
            for k, v in ((self.container.get("resources") or {}).get("limits") or {}).items()
        }


class ServedResource(Protocol):
    """What kubelet sees of one extended resource a plugin serves."""

    @property
    def resource_name(self) -> str: ...

    @property
    def preferred_allocation(self) -> bool: ...

    @property
    def socket_name(self) -> str: ...


@dataclass(frozen=True)
class CapacityResource:
    """A resource a plugin advertises beside its own, with ``replicas(device)`` IDs per device.
    By default node capacity is all it is for: its Allocate gives the container nothing (the
    vendor's own resource did the work; Cambricon's sMLU core and memory units, from whose
    capacity HAMi reads its MLU inventory). ``listed`` replaces the devices it lists (NVIDIA's
    static MIG instances, one resource per profile), and ``respond`` answers a container's
    Allocate from the IDs kubelet chose. One named like the vendor's own resource is served in
    its place (NVIDIA's ``single`` MIG strategy: the instances under ``nvidia.com/gpu``); the
    node registration still describes the vendor's devices."""

    resource_name: str
    socket_name: str
    replicas: Callable[[PhysicalDevice], int]
    preferred_allocation: bool = False
    listed: Callable[[Sequence[PhysicalDevice]], list[PhysicalDevice]] | None = None
    respond: Callable[[Sequence[str]], pb.ContainerAllocateResponse] | None = None


class VendorPolicy(Protocol):
    vendor: str
    """The vendor key of HAMi's annotations, e.g. ``NVIDIA``."""
    resource_name: str
    """The extended resource advertised to kubelet, e.g. ``nvidia.com/gpu``."""
    split_count: int
    numa_topology: bool
    """Report each device's NUMA node to kubelet."""
    preferred_allocation: bool
    """Announce GetPreferredAllocation at registration."""

    @property
    def socket_name(self) -> str:
        """The plugin's socket file name in the device-plugin folder."""
        ...

    @property
    def register_annotation(self) -> str: ...

    def node_devices(self, devices: Sequence[PhysicalDevice]) -> list[hami_rustcore.Device]:
        """The devices as the register annotation lists them."""
        ...

    def node_annotations(self, devices: Sequence[PhysicalDevice], links: Links) -> dict[str, str]:
        """Every node annotation the plugin owns (register, and pair scores when enabled)."""
        ...

    def container_response(self, ctx: ContainerContext) -> pb.ContainerAllocateResponse:
        """The env, mounts and devices of one container. Raises `ValueError` with a message
        for the pod when the allocation cannot be honoured."""
        ...

    def allocated_annotations(self, pod: Json, given: Sequence[ContainerContext]) -> dict[str, str]:
        """Pod annotations of the vendor's own to write with the allocation (in the same patch),
        e.g. Cambricon's ``CAMBRICON_DSMLU_ASSIGNED: "true"``."""
        ...

    async def release_locks(self, client: KubeClient, node: str, pod: Json, *, done: bool) -> None:
        """Called after every Allocate of the pod; ``done``: the vendor has nothing left to
        allocate for it (or its allocation failed). Then the vendor's own node lock is released
        (Cambricon's ``cambricon.com/dsmlu.lock``); the shared ``hami.io/mutex.lock`` is the
        framework's."""
        ...

    def capacity_resources(self) -> Sequence[CapacityResource]:
        """Resources advertised beside ``resource_name`` (see `CapacityResource`)."""
        ...


def containers_in_annotation_order(pod: Json) -> list[Json]:
    """Init containers first, then app containers: the order of HAMi's device annotation."""
    spec = pod.get("spec") or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
