"""HAMi's monitor metrics, computed at each scrape (node-side reference §2.4): the same names,
the same labels and the constant ``zone="vGPU"``, so HAMi's dashboards and alerts keep working.

Per device (from the vendor's source): ``hami_host_gpu_memory_used_bytes``,
``hami_host_gpu_utilization_ratio``, ``hami_host_gpu_memory_controller_utilization_ratio``
(labels node, device_index, device_uuid, device_type; HAMi leaves ``node`` off the last one, a
bug its dashboards work around: we keep it, an extra label breaks no query).

Per container device (from the regions; labels namespace, pod, container, vdevice_index,
device_uuid): ``hami_vgpu_memory_used_bytes``, ``hami_vgpu_memory_limit_bytes`` (only where the
container has a limit), ``hami_container_device_memory_bytes`` (HAMi's duplicate of used),
``hami_container_device_utilization_ratio``, ``hami_container_last_kernel_elapsed_seconds``,
``hami_vgpu_memory_buffer_bytes`` (allocations), ``hami_vgpu_memory_context_bytes`` (what the
driver holds beyond them: contexts and lazily loaded modules together, from its per-process
usage; HAMi's ``_module_bytes`` is not exported apart). ``hami_mig_device_info`` (=1 per MIG
instance made for a pod of the node, from its ``hami.io/vgpu-mig-allocations``).
Containers whose pod is not (yet) known on this node are counted in
``hami_monitor_containers{state="orphan"}``, not exported with empty labels.

Ours: ``hami_vgpu_memory_spilled_bytes`` (of used: allocations backed by host memory under
oversubscription), ``hami_monitor_containers{node,state}``, ``hami_container_priority_held`` (1
while the feedback loop holds a container's launches), ``hami_container_utilization_switch``.
"""

from __future__ import annotations

import time
from collections import Counter

from hami_common.telemetry.exposition import Family, label_text, render

from hami_monitor.containers import OK, STATES, Container, Scanner
from hami_monitor.devices import DeviceSource, HostDevice
from hami_monitor.loop import MonitorLoop
from hami_monitor.pods import PodIndex

ZONE = "vGPU"
HOST = ("node", "device_index", "device_uuid", "device_type", "zone")
CTR = ("namespace", "pod", "container", "vdevice_index", "device_uuid", "zone")
WHO = ("namespace", "pod", "container", "zone")
MIG = ("namespace", "pod", "container", "vdevice_index", "device_uuid", "mig_uuid", "profile",
       "gpu_instance_id", "compute_instance_id")  # fmt: skip
LEGACY_HOST = ("nodeid", "deviceidx", "deviceuuid", "devicetype", "zone")
LEGACY_CTR = ("podnamespace", "podname", "ctrname", "vdeviceid", "deviceuuid", "zone")


class MonitorCollector:
    def __init__(
        self,
        node: str,
        source: DeviceSource,
        scanner: Scanner,
        pods: PodIndex,
        loop: MonitorLoop,
        *,
        legacy: bool = False,
    ) -> None:
        self.node, self.source, self.scanner, self.pods = node, source, scanner, pods
        self.loop, self.legacy = loop, legacy

    def render(self) -> str:
        """The metrics in the Prometheus text format (call from a worker thread: it reads
        files and the driver)."""
        devices = list(self.source.devices())
        busy = {d.uuid: d.utilization for d in devices if d.utilization is not None}
        return render([*self._host(devices), *self._containers(self.scanner.scan(), busy),
                       self._mig()])  # fmt: skip

    def _mig(self) -> Family:
        info = Family("hami_mig_device_info", "A MIG instance made for a container (1)")
        for pod in self.pods.pods.values():
            for m in pod.mig:
                values = (pod.namespace, pod.name, m.container, str(m.device_index), m.gpu_uuid,
                          m.mig_uuid, m.profile, str(m.gpu_instance_id),
                          str(m.compute_instance_id))  # fmt: skip
                info.add(label_text(MIG, values), 1)
        return info

    def _host(self, devices: list[HostDevice]) -> list[Family]:
        used = Family("hami_host_gpu_memory_used_bytes", "Device memory in use (driver)")
        util = Family("hami_host_gpu_utilization_ratio", "Device utilisation, percent")
        memu = Family("hami_host_gpu_memory_controller_utilization_ratio",
                      "Device memory controller utilisation, percent")  # fmt: skip
        old_used = Family("HostGPUMemoryUsage", "Legacy: device memory in use")
        old_util = Family("HostCoreUtilization", "Legacy: device utilisation")
        for d in devices:
            values = (self.node, str(d.index), d.uuid, d.type, ZONE)
            labels, legacy = label_text(HOST, values), label_text(LEGACY_HOST, values)
            if d.memory_used_bytes is not None:
                used.add(labels, d.memory_used_bytes)
                old_used.add(legacy, d.memory_used_bytes)
            if d.utilization is not None:
                util.add(labels, d.utilization)
                old_util.add(legacy, d.utilization)
            if d.memory_utilization is not None:
                memu.add(labels, d.memory_utilization)
        return [used, util, memu, *((old_used, old_util) if self.legacy else ())]

    def _containers(self, containers: list[Container], busy: dict[str, float]) -> list[Family]:
        """``busy``: each device's own utilisation. A container the feedback loop lets run
        unthrottled (switch 0: it is the only one launching on its devices) is not measured
        by the limiter; while it is active, its devices' utilisation is its own."""
        used = Family("hami_vgpu_memory_used_bytes", "Device memory the container holds")
        limit = Family("hami_vgpu_memory_limit_bytes", "Device memory limit of the container")
        dup = Family("hami_container_device_memory_bytes",
                     "Device memory the container holds (HAMi's duplicate)")  # fmt: skip
        util = Family("hami_container_device_utilization_ratio",
                      "Percent of the device's time the container kept it busy")  # fmt: skip
        last = Family("hami_container_last_kernel_elapsed_seconds",
                      "Seconds since the container's last kernel launch")  # fmt: skip
        buffer = Family("hami_vgpu_memory_buffer_bytes",
                        "Device memory the container allocated (buffers)")  # fmt: skip
        ctx = Family("hami_vgpu_memory_context_bytes",
                     "Device memory the driver holds beyond the allocations")  # fmt: skip
        spilled = Family("hami_vgpu_memory_spilled_bytes",
                         "Of the container's memory, what is backed by host memory "
                         "(oversubscription)")  # fmt: skip
        held = Family("hami_container_priority_held", "1 while the feedback loop holds the "
                      "container's launches for a higher-priority container")  # fmt: skip
        switch = Family(
            "hami_container_utilization_switch",
            "1 when the hook enforces the container's SM limit (policy default)",
        )
        old = {k: Family(n, "Legacy") for k, n in (
            ("used", "vGPU_device_memory_usage_in_bytes"),
            ("limit", "vGPU_device_memory_limit_in_bytes"),
            ("util", "Device_utilization_desc_of_container"),
            ("last", "Device_last_kernel_of_container"),
            ("desc", "Device_memory_desc_of_container"))}  # fmt: skip
        states: Counter[str] = Counter()
        pods, utilization, held_now = self.pods.pods, self.loop.utilization, self.loop.held
        now = time.time()
        for c in containers:
            info = pods.get(c.pod_uid)
            if info is None:
                states["orphan"] += 1
                continue
            states[c.state] += 1
            if c.state != OK or c.snapshot is None or c.region is None:
                continue
            snap = c.snapshot
            uuids = info.devices.get(c.name, ())
            indices = range(len(uuids)) if uuids else [d.index for d in snap.active_devices()]
            ratios = list(utilization.get(c.region, ()))
            if snap.utilization_switch == 0 and snap.recent_kernel > 0:
                ratios += [0.0] * (len(uuids) - len(ratios))
                for i, uuid in enumerate(uuids):
                    if uuid in busy:
                        ratios[i] = busy[uuid]
            who = label_text(WHO, (info.namespace, info.name, c.name, ZONE))
            held.add(who, 1 if c.region in held_now else 0)
            switch.add(who, snap.utilization_switch)
            elapsed = max(0.0, now - snap.last_kernel_s) if snap.last_kernel_s > 0 else None
            for i in indices:
                dev = snap.devices[i]
                values = (info.namespace, info.name, c.name, str(i),
                          uuids[i] if i < len(uuids) else "", ZONE)  # fmt: skip
                labels = label_text(CTR, values)
                used.add(labels, dev.used_bytes)
                dup.add(labels, dev.used_bytes)
                buffer.add(labels, dev.used_bytes - dev.ctx_bytes)
                ctx.add(labels, dev.ctx_bytes)
                spilled.add(labels, dev.spilled_bytes)
                if dev.limit_bytes:
                    limit.add(labels, dev.limit_bytes)
                if i < len(ratios):
                    util.add(labels, round(ratios[i], 3))
                if elapsed is not None:
                    last.add(labels, round(elapsed, 3))
                if self.legacy:
                    lg = label_text(LEGACY_CTR, values)
                    old["used"].add(lg, dev.used_bytes)
                    desc = f'context="0",module="0",data="{dev.used_bytes}",offset="0"'
                    old["desc"].add(f"{lg},{desc}", dev.used_bytes)
                    if dev.limit_bytes:
                        old["limit"].add(lg, dev.limit_bytes)
                    if i < len(ratios):
                        old["util"].add(lg, round(ratios[i], 3))
                    if elapsed is not None:
                        old["last"].add(lg, round(elapsed, 3))
        count = Family("hami_monitor_containers", "Container folders by the state of their region")
        for state in (*STATES, "orphan"):
            count.add(label_text(("node", "state"), (self.node, state)), states[state])
        families = [used, limit, dup, util, last, buffer, ctx, spilled, held, switch, count]
        return families + (list(old.values()) if self.legacy else [])
