"""Prometheus metrics: HAMi's scheduler names and labels (control-plane reference §9.1), so
HAMi's dashboards keep working, computed from the core's state at scrape time; plus ours.

HAMi's, each with ``zone="vGPU"``:

- per device (labels node, device_uuid, device_index, device_type): ``hami_gpu_memory_limit_bytes``,
  ``hami_gpu_core_limit_ratio``, ``hami_gpu_memory_allocated_bytes`` (+ device_cores),
  ``hami_gpu_shared_count``, ``hami_gpu_core_allocated_ratio``, ``hami_node_gpu_overview``
  (+ device_cores, device_memory_limit), ``hami_node_gpu_memory_allocated_ratio``;
- per placed container device (labels namespace, node, pod, container_index, device_uuid):
  ``hami_vgpu_memory_allocated_bytes``, ``hami_vgpu_core_allocated_ratio``. ``container_index``
  is the container's position in the allocation (init containers first); HAMi's is always 0
  after its init-container collapse;
- ``--legacy-metrics``: the old names (``GPUDeviceMemoryLimit``, ``nodeGPUOverview``,
  ``vGPUMemoryAllocated``, ...) with the old labels (``nodeid``, ``deviceuuid``, ...).

- ``hami_node_gpu_mig_instance_info`` (=1; labels node, device_uuid, device_index, mig_uuid,
  profile, gpu_instance_id, compute_instance_id, placement_start, placement_size): each MIG
  instance the plugin made (a reservation with its runtime identity).

Not exported: HAMi's quota gauges (the webhook enforces quotas).

Ours: per-node totals (``hami_node_gpu_memory_bytes``, ...), ``hami_extender_pending_pods``
(pods of our scheduler not placed yet, by the reason the last filter gave), the filter and bind
latency histograms, decisions by outcome and reason, expired reservations, ``hami_build_info``.

The per-device and per-pod gauges (400,000 lines at 5,000 nodes x 8 devices and 40,000 pods)
are written by `hami_common.telemetry.exposition` in a worker thread: prometheus_client's writer
would hold the event loop, and with it /filter, for seconds.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

import hami_rustcore as core
from hami_common.telemetry.exposition import Family, label_text, render
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter

MIB = 2**20
ZONE = "vGPU"
_DEV = ("node", "device_uuid", "device_index", "device_type", "zone")
_POD = ("namespace", "node", "pod", "container_index", "device_uuid", "zone")
_OLD_DEV = ("nodeid", "deviceuuid", "deviceidx", "devicetype", "zone")
_OLD_POD = ("podnamespace", "nodename", "podname", "containeridx", "deviceuuid", "zone")
_MIG = ("node", "device_uuid", "device_index", "mig_uuid", "profile", "gpu_instance_id",
        "compute_instance_id", "placement_start", "placement_size")  # fmt: skip
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class StateMetrics:
    """The gauges computed from the state at each scrape. ``placed`` gives the UIDs of the
    pods in the state, ``pending`` the pending pods' count by reason; both are set by the app
    once its watches exist (until then: none)."""

    def __init__(self, cluster: core.Cluster, *, legacy: bool = False) -> None:
        self.cluster, self.legacy = cluster, legacy
        self.placed: Callable[[], Iterable[str]] = tuple
        self.pending: Callable[[], Counter[str]] = Counter

    def render(self) -> str:
        return render([*self._devices(), *self._pods(), self._pending()])

    def _devices(self) -> list[Family]:
        f = {
            "mem_limit": Family("hami_gpu_memory_limit_bytes", "Device memory (bytes)"),
            "core_limit": Family("hami_gpu_core_limit_ratio", "Device cores (percent)"),
            "mem_alloc": Family("hami_gpu_memory_allocated_bytes",
                                "Device memory allocated (bytes)"),
            "shared": Family("hami_gpu_shared_count", "Containers sharing the device"),
            "core_alloc": Family("hami_gpu_core_allocated_ratio",
                                 "Device cores allocated (percent)"),
            "overview": Family("hami_node_gpu_overview", "Device memory allocated (bytes)"),
            "mem_ratio": Family("hami_node_gpu_memory_allocated_ratio",
                                "Allocated / total device memory"),
        }  # fmt: skip
        old = {
            "mem_limit": Family("GPUDeviceMemoryLimit", "Legacy: device memory (bytes)"),
            "core_limit": Family("GPUDeviceCoreLimit", "Legacy: device cores"),
            "mem_alloc": Family("GPUDeviceMemoryAllocated", "Legacy: memory allocated"),
            "shared": Family("GPUDeviceSharedNum", "Legacy: containers sharing the device"),
            "core_alloc": Family("GPUDeviceCoreAllocated", "Legacy: cores allocated"),
            "overview": Family("nodeGPUOverview", "Legacy: memory allocated"),
            "mem_ratio": Family("nodeGPUMemoryPercentage", "Legacy: allocated / total memory"),
        }
        per_node: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for u in self.cluster.usage():
            d = u.device
            values = (u.node, d.id, str(d.index), d.type, ZONE)
            families = [(f, label_text(_DEV, values), ("device_cores", "device_memory_limit"))]
            if self.legacy:
                families.append((old, label_text(_OLD_DEV, values),
                                 ("devicecores", "devicememorylimit")))  # fmt: skip
            mem, cores = d.devmem * MIB, str(d.devcore)
            for fam, labels, (cores_key, limit_key) in families:
                fam["mem_limit"].add(labels, mem)
                fam["core_limit"].add(labels, d.devcore)
                fam["mem_alloc"].add(f'{labels},{cores_key}="{cores}"', u.usedmem * MIB)
                fam["shared"].add(labels, u.used)
                fam["core_alloc"].add(labels, u.usedcores)
                fam["overview"].add(f'{labels},{cores_key}="{cores}",{limit_key}="{d.devmem}"',
                                    u.usedmem * MIB)  # fmt: skip
                if d.devmem > 0:
                    fam["mem_ratio"].add(labels, u.usedmem / d.devmem)
            totals = per_node[u.node]
            totals[0] += d.devmem
            totals[1] += u.usedmem
            totals[2] += u.usedcores
            totals[3] += 1
        nodes = []
        for metric, doc, i, scale in (
            ("hami_node_gpu_memory_bytes", "Total device memory of the node (bytes)", 0, MIB),
            ("hami_node_gpu_memory_allocated_bytes", "Device memory allocated (bytes)", 1, MIB),
            ("hami_node_gpu_core_allocated_ratio", "Sum of allocated cores (percent)", 2, 1),
            ("hami_node_gpu_devices", "Registered healthy devices", 3, 1),
        ):
            family = Family(metric, doc)
            for node, totals in sorted(per_node.items()):
                family.add(label_text(("node", "zone"), (node, ZONE)), totals[i] * scale)
            nodes.append(family)
        return [*f.values(), *(old.values() if self.legacy else ()), *nodes]

    def _pods(self) -> list[Family]:
        mig = Family("hami_node_gpu_mig_instance_info", "A MIG instance made on a device (1)")
        device_index: dict[str, int] | None = None
        mem = Family("hami_vgpu_memory_allocated_bytes", "Device memory allocated to a container")
        cores = Family("hami_vgpu_core_allocated_ratio", "Device cores allocated to a container")
        old_mem = Family("vGPUMemoryAllocated", "Legacy: memory allocated to a container")
        old_cores = Family("vGPUCoreAllocated", "Legacy: cores allocated to a container")
        for uid in list(self.placed()):
            pod = self.cluster.pod(uid)
            if pod is None:
                continue
            if pod.mig_allocations:
                if device_index is None:  # once per scrape, and only with MIG pods
                    device_index = {u.device.id: u.device.index for u in self.cluster.usage()}
                for e in json.loads(pod.mig_allocations):
                    if "migUUID" not in e:
                        continue  # reserved, not made yet
                    gpu, placement = e["gpuUUID"], e["placement"]
                    info = (pod.node, gpu, str(device_index.get(gpu, "")), e["migUUID"],
                            e["profile"], str(e["gpuInstanceID"]), str(e["computeInstanceID"]),
                            str(placement["start"]), str(placement["size"]))  # fmt: skip
                    mig.add(label_text(_MIG, info), 1)
            for index, entry in enumerate(pod.devices):
                for dev in entry:
                    values = (pod.namespace, pod.node, pod.name, str(index), dev.uuid, ZONE)
                    labels = label_text(_POD, values)
                    mem.add(labels, dev.usedmem * MIB)
                    cores.add(labels, dev.usedcores)
                    if self.legacy:
                        legacy = label_text(_OLD_POD, values)
                        old_mem.add(legacy, dev.usedmem * MIB)
                        old_cores.add(legacy, dev.usedcores)
        return [mem, cores, mig, *((old_mem, old_cores) if self.legacy else ())]

    def _pending(self) -> Family:
        family = Family(
            "hami_extender_pending_pods",
            "Pods of this scheduler on no node yet, by the last filter's reason",
        )
        for reason, count in sorted(self.pending().items()):
            family.add(label_text(("reason",), (reason,)), count)
        return family


class ExtenderMetrics:
    def __init__(
        self, registry: CollectorRegistry, cluster: core.Cluster, *, legacy: bool = False
    ) -> None:
        self.registry = registry
        self.state = StateMetrics(cluster, legacy=legacy)
        self.filter_latency = Histogram(
            "hami_extender_filter_duration_seconds",
            "Time to answer one /filter (including any annotation write)",
            registry=registry, buckets=_BUCKETS,
        )  # fmt: skip
        self.bind_latency = Histogram(
            "hami_extender_bind_duration_seconds",
            "Time to answer one /bind (lock, annotations, Binding)",
            registry=registry, buckets=_BUCKETS,
        )  # fmt: skip
        self.decisions = PromCounter(
            "hami_extender_decisions",
            "Decisions by verb (filter, bind), outcome and reason",
            ["verb", "outcome", "reason"],
            registry=registry,
        )
        self.released = PromCounter(
            "hami_extender_reservations_expired",
            "Reservations released because they were not bound in time",
            registry=registry,
        )

    def render(self) -> bytes:
        """Everything, in the text format (call from a worker thread at scale)."""
        return self.state.render().encode() + generate_latest(self.registry)
