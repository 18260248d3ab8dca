"""Prometheus metrics: HAMi's scheduler names (so dashboards keep working), computed from the
core's usage at scrape time, plus our filter/bind latency histograms and decision counters."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import hami_rustcore as core
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MIB = 2**20
_DEV = ["node", "device_uuid", "device_index", "device_type", "zone"]
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class UsageCollector(Collector):
    """HAMi's per-device gauges (``hami_gpu_*``), and per-node totals."""

    def __init__(self, cluster: core.Cluster) -> None:
        self.cluster = cluster

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = {
            "mem_limit": GaugeMetricFamily(
                "hami_gpu_memory_limit_bytes", "Device memory (bytes)", labels=_DEV),
            "core_limit": GaugeMetricFamily(
                "hami_gpu_core_limit_ratio", "Device cores (percent)", labels=_DEV),
            "mem_alloc": GaugeMetricFamily(
                "hami_gpu_memory_allocated_bytes", "Device memory allocated (bytes)",
                labels=[*_DEV, "device_cores"]),
            "shared": GaugeMetricFamily(
                "hami_gpu_shared_count", "Containers sharing the device", labels=_DEV),
            "core_alloc": GaugeMetricFamily(
                "hami_gpu_core_allocated_ratio", "Device cores allocated (percent)", labels=_DEV),
            "overview": GaugeMetricFamily(
                "hami_node_gpu_overview", "Device memory allocated (bytes)",
                labels=[*_DEV, "device_cores", "device_memory_limit"]),
            "mem_ratio": GaugeMetricFamily(
                "hami_node_gpu_memory_allocated_ratio", "Allocated / total device memory",
                labels=_DEV),
        }  # fmt: skip
        per_node: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for u in self.cluster.usage():
            d = u.device
            labels = [u.node, d.id, str(d.index), d.type, "vGPU"]
            g["mem_limit"].add_metric(labels, d.devmem * MIB)
            g["core_limit"].add_metric(labels, d.devcore)
            g["mem_alloc"].add_metric([*labels, str(d.devcore)], u.usedmem * MIB)
            g["shared"].add_metric(labels, u.used)
            g["core_alloc"].add_metric(labels, u.usedcores)
            g["overview"].add_metric([*labels, str(d.devcore), str(d.devmem)], u.usedmem * MIB)
            if d.devmem > 0:
                g["mem_ratio"].add_metric(labels, u.usedmem / d.devmem)
            totals = per_node[u.node]
            totals[0] += d.devmem
            totals[1] += u.usedmem
            totals[2] += u.usedcores
            totals[3] += 1
        yield from g.values()
        nodes = {
            "hami_node_gpu_memory_bytes": ("Total device memory of the node (bytes)", 0, MIB),
            "hami_node_gpu_memory_allocated_bytes": ("Device memory allocated (bytes)", 1, MIB),
            "hami_node_gpu_core_allocated_ratio": ("Sum of allocated cores (percent)", 2, 1),
            "hami_node_gpu_devices": ("Registered healthy devices", 3, 1),
        }
        for metric, (doc, i, scale) in nodes.items():
            family = GaugeMetricFamily(metric, doc, labels=["node", "zone"])
            for node, totals in sorted(per_node.items()):
                family.add_metric([node, "vGPU"], totals[i] * scale)
            yield family


class ExtenderMetrics:
    def __init__(self, registry: CollectorRegistry, cluster: core.Cluster) -> None:
        registry.register(UsageCollector(cluster))
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
        self.decisions = Counter(
            "hami_extender_decisions",
            "Decisions by verb (filter, bind), outcome and reason",
            ["verb", "outcome", "reason"],
            registry=registry,
        )
        self.released = Counter(
            "hami_extender_reservations_expired",
            "Reservations released because they were not bound in time",
            registry=registry,
        )
