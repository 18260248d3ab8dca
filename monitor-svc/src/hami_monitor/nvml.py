"""The NVIDIA device source: NVML, the only module of the monitor that imports the vendor
library. Per device: memory used and total, GPU and memory-controller utilisation, UUID, name.

The type label follows the device plugin's registration (``NVIDIA-`` prefixed unless the name
starts with NVIDIA), so the monitor's ``device_type`` equals the scheduler's for the same
device; HAMi's monitor always prefixes (``NVIDIA-NVIDIA A100-...``), one of the label
mismatches its own dashboards join around.
"""

from __future__ import annotations

import logging

import pynvml  # type: ignore[import-untyped]

from hami_monitor.devices import HostDevice, SourceError

log = logging.getLogger(__name__)
ALLOCATED = "hami.io/vgpu-devices-allocated"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def device_type(name: str) -> str:
    """The plugin's model name: NVML's, prefixed ``NVIDIA-`` unless it starts with NVIDIA."""
    return name if name.startswith("NVIDIA") else f"NVIDIA-{name}"


class NvmlSource:
    vendor = "NVIDIA"
    allocated_annotation = ALLOCATED

    def __init__(self) -> None:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise SourceError(
                f"NVML could not be initialised ({exc}); is the NVIDIA driver installed, is "
                "libnvidia-ml.so.1 on the library path (the nvidia runtime mounts it), or is "
                "this a node without NVIDIA GPUs (then --vendor none)?"
            ) from None
        self._failed: set[int] = set()

    def devices(self) -> list[HostDevice]:
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            log.error("NVML could not count devices: %s", exc)
            return []
        out = []
        for index in range(count):
            try:
                out.append(self._device(index))
                self._failed.discard(index)
            except pynvml.NVMLError as exc:
                if index not in self._failed:  # once per failure, not once per scrape
                    log.error("GPU %d: NVML query failed (%s); left out of the metrics", index, exc)
                    self._failed.add(index)
        return out

    def _device(self, index: int) -> HostDevice:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
        name = _text(pynvml.nvmlDeviceGetName(handle))
        used = total = None
        try:
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            used, total = int(memory.used), int(memory.total)
        except pynvml.NVMLError_NotSupported:
            pass  # unified memory (GB10): HAMi skips the metric too
        gpu = mem = None
        try:
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            gpu, mem = float(rates.gpu), float(rates.memory)
        except pynvml.NVMLError_NotSupported:
            pass
        return HostDevice(index, uuid, device_type(name), used, total, gpu, mem)

    def close(self) -> None:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as exc:
            log.debug("nvmlShutdown: %s", exc)
