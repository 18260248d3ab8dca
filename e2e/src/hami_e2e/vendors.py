"""The three vendors the harness runs, in one place: each fake node's device plugin (its module,
arguments and device config), what "registered" means for it, the device config the stack's
webhook and extender read (HAMi's chart chips for Ascend, enabled), and the resources
kube-scheduler leaves to the extender (HAMi's chart: the NVIDIA names, ``cambricon.com/vmlu``,
and every Ascend chip's three names).

A node's vendor is its devices' ``vendor`` (`hami_e2e.nodes.NodePool`): ``nvidia``, ``ascend``
(the pool's ``model`` is the chip's DCMI name, e.g. ``910B3``) or ``cambricon``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hami_common.settings.testing import vnpus

Json = dict[str, Any]

NVIDIA_RESOURCES = ("nvidia.com/gpu", "nvidia.com/gpumem", "nvidia.com/gpucores",
                    "nvidia.com/gpumem-percentage", "nvidia.com/priority")  # fmt: skip
CAMBRICON = {
    "resourceCountName": "cambricon.com/vmlu",
    "resourceMemoryName": "cambricon.com/mlu.smlu.vmemory",
    "resourceCoreName": "cambricon.com/mlu.smlu.vcore",
}
MLU_UNIT_MIB = 256


# Three of HAMi's chart chips (charts/hami/templates/scheduler/device-configmap.yaml, v2.10).
VNPUS: Json = vnpus()


def device_config(split_count: int = 10) -> Json:
    """The device config every component of the harness reads."""
    return {"nvidia": {"deviceSplitCount": split_count}, "cambricon": dict(CAMBRICON),
            "vnpus": VNPUS}  # fmt: skip


def write_device_config(path: Path, split_count: int = 10) -> Path:
    path.write_text(json.dumps(device_config(split_count)), encoding="utf-8")
    return path


def managed_resources() -> list[str]:
    """What kube-scheduler's extender stanza marks ``ignoredByScheduler`` (no duplicates: HAMi
    #485, kube-scheduler refuses them)."""
    names = [*NVIDIA_RESOURCES, CAMBRICON["resourceCountName"]]
    for chip in VNPUS["configs"]:
        names += [chip["resourceName"], chip["resourceMemoryName"], chip["resourceCoreName"]]
    return list(dict.fromkeys(names))


def ascend_chip(model: str) -> Json:
    """The ``vnpus`` entry of a chip by its DCMI name."""
    for chip in VNPUS["configs"]:
        if chip["chipName"] == model:
            return dict(chip)
    raise ValueError(f"no Ascend chip named {model!r} in the harness's vnpus")


@dataclass(frozen=True)
class VendorAgent:
    """How one fake node's device plugin runs, and what shows it registered."""

    vendor: str
    module: str
    service: str
    """Its OpenTelemetry service name."""
    resource: str
    """The resource whose allocatable is ``per_device`` x devices once it registered."""
    per_device: int
    register: str | None
    """The node annotation it writes (None: Cambricon has none)."""

    def args(self, root: Path, config: Path) -> list[str]:
        """Its vendor flags: the fake backend on ``root/spec.json``, the device config."""
        common = ["--backend", "fake", "--fake-spec", str(root / "spec.json"),
                  "--device-config-file", str(config)]  # fmt: skip
        if self.vendor == "nvidia":
            return [*common, "--hook-path", str(root / "hook"),
                    "--lock-dir", str(root / "vgpulock")]  # fmt: skip
        if self.vendor == "ascend":
            return [*common, "--hook-path", str(root / "hook"),
                    "--shared-region-path", str(root / "shared")]  # fmt: skip
        return common


def agent_for(devices: list[Json], split_count: int = 10) -> VendorAgent:
    """The plugin of a node whose inventory (the e2e devices annotation) is ``devices``."""
    vendor = str(devices[0].get("vendor", "nvidia")) if devices else "nvidia"
    if vendor == "ascend":
        chip = ascend_chip(str(devices[0]["model"]))
        smallest = min(t["memory"] for t in chip["templates"])
        return VendorAgent("ascend", "hami_plugin_ascend", "hami-plugin-ascend",
                           chip["resourceName"], chip["memoryAllocatable"] // smallest,
                           f"hami.io/node-register-{chip['commonWord']}")  # fmt: skip
    if vendor == "cambricon":
        return VendorAgent("cambricon", "hami_plugin_cambricon", "hami-plugin-cambricon",
                           CAMBRICON["resourceCoreName"], 100, None)  # fmt: skip
    return VendorAgent("nvidia", "hami_plugin_nvidia", "hami-plugin-nvidia", "nvidia.com/gpu",
                       split_count, "hami.io/node-nvidia-register")  # fmt: skip
