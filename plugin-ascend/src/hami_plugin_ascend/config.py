"""The Ascend plugin's settings and its effective options on this node.

Process settings (`PluginSettings`, CLI > env ``HAMI_PLUGIN_*`` > ``--config-file`` > default)
say where things are. HAMi's device ConfigMap (``--device-config-file``, its ``vnpus:``) says how
NPUs are shared: the plugin serves the chip whose ``chipName`` is DCMI's name for this node's
NPUs, as HAMi's Ascend plugin does. The per-node file (``--node-config-file``, the ConfigMap
``hami-device-node-config``: ``nodes[] {name, hami-vnpu-core, vDeviceCount, filterDevices}``)
overrides the soft-split switch and the slot count, and hides NPUs. Every invalid value is a
`SettingsError` that names the key and the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from hami_common.deviceplugin.backend import PhysicalDevice
from hami_common.deviceplugin.service import DevicePluginSettings
from hami_common.settings import (
    AscendChipConfig,
    DeviceConfig,
    SettingsError,
    ascend_entry,
    load_device_config,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PluginSettings(DevicePluginSettings):
    """hami-plugin-ascend: the Huawei Ascend device plugin (kubelet's device plugin API, HAMi's
    node registration and allocation protocol). Tracing: the standard OTEL_* variables."""

    device_config_file: Path = Field(
        description="HAMi's device-config.yaml: its vnpus: chip whose chipName is this node's "
        "NPUs' (as DCMI names them) is served"
    )
    node_config_file: Path | None = Field(
        default=None,
        description="HAMi's per-node file (node-config.yaml: nodes[] {name, hami-vnpu-core, "
        "vDeviceCount, filterDevices {uuid, index}})",
    )
    hook_path: Path = Field(
        default=Path("/usr/local/hami-vnpu-core"),
        description="hami-core mode: the host folder of libvnpu.so and ld.so.preload, and of the "
        "per-container folders (<hook-path>/containers/<pod uid>_<container>)",
    )
    shared_region_path: Path = Field(
        default=Path("/usr/local/hami-shared-region"),
        description="hami-core mode: the host folder mounted at /hami-shared-region",
    )
    backend: Literal["dcmi", "fake"] = Field(
        default="dcmi",
        description="where NPUs come from: DCMI (libdcmi.so), or fake: the device spec in "
        "--fake-spec",
    )
    dcmi_library: str = Field(
        default="libdcmi.so",
        description="the DCMI library to load (a name the loader finds, or a path such as "
        "/usr/local/Ascend/driver/lib64/driver/libdcmi.so)",
    )
    fake_spec: Path | None = Field(
        default=None,
        description="the fake backend's device spec, JSON or YAML: a list of NPUs, or "
        '{"devices": [...]}; an NPU is {"uuid": "<die id>", "index": 0, "model": "910B3", '
        '"memory_mib": 65536, "healthy": true, "phy_id": 0, "card": 0, "device": 0}; the file '
        "is re-read for health changes",
    )
    health_interval: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=5.0, description="seconds between DCMI health checks of every NPU"
    )
    register_interval: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="seconds between node annotation checks (health changes are published at once)",
    )


class _FilterDevices(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    uuid: list[str] = Field(default_factory=list)
    index: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)


class AscendNodeConfig(BaseModel):
    """One ``nodes[]`` entry of HAMi's Ascend node config (its keys, hyphen included)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    hami_vnpu_core: bool | None = Field(default=None, alias="hami-vnpu-core")
    v_device_count: Annotated[int, Field(ge=0)] = Field(default=0, alias="vDeviceCount")
    filter_devices: _FilterDevices = Field(default_factory=_FilterDevices, alias="filterDevices")


class AscendNodeConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: list[AscendNodeConfig] = Field(default_factory=list)


def load_node_config(path: Path, node: str) -> AscendNodeConfig | None:
    """This node's entry of the Ascend node config file, if any."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SettingsError([f"file {path}: cannot read it as YAML ({exc})"]) from None
    try:
        parsed = AscendNodeConfigFile.model_validate(data or {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"])
            problems.append(f"file {path}: {where}: {err['msg']}")
        raise SettingsError(problems) from None
    return next((entry for entry in parsed.nodes if entry.name == node), None)


@dataclass(frozen=True)
class AscendOptions:
    """The chip this node serves and how its NPUs are shared."""

    chip: AscendChipConfig
    soft: bool
    """hami-core (soft split) mode: the node takes soft-split pods."""
    split_count: int
    """VDeviceCount: how many containers share one NPU."""
    filter_uuids: frozenset[str] = field(default_factory=frozenset)
    filter_indexes: frozenset[int] = field(default_factory=frozenset)

    def keeps(self, dev: PhysicalDevice) -> bool:
        return dev.uuid not in self.filter_uuids and dev.index not in self.filter_indexes

    def vendor_table(self) -> dict[str, dict[str, Any]]:
        """The core's vendor table entry of this chip (for its annotation names)."""
        return {self.chip.common_word: dict(ascend_entry(self.chip, self.soft))}


def split_count(chip: AscendChipConfig, node: AscendNodeConfig | None) -> int:
    """HAMi's VDeviceCount: the node's ``vDeviceCount``, else a whole NPU's memory over the
    smallest template's, else 1."""
    if node is not None and node.v_device_count > 0:
        return node.v_device_count
    sizes = [t.memory for t in chip.templates if t.memory > 0]
    return max(1, chip.memory_allocatable // min(sizes)) if sizes else 1


def select_chip(config: DeviceConfig, chip_names: Sequence[str], where: str) -> AscendChipConfig:
    """The ``vnpus`` chip whose ``chipName`` is the NPUs' (one chip per node, as HAMi)."""
    names = sorted(set(chip_names))
    if len(names) != 1:
        found = ", ".join(names) or "none"
        raise SettingsError([
            f"this node has NPUs of {len(names)} chips ({found}); the plugin serves one chip "
            "per node"
        ])  # fmt: skip
    for chip in config.vnpus.configs:
        if chip.chip_name == names[0]:
            return chip
    known = ", ".join(c.chip_name for c in config.vnpus.configs) or "none"
    raise SettingsError([
        f"{where}: vnpus has no chip with chipName {names[0]!r} (this node's NPUs); its chips: "
        f"{known}; add the chip's entry (HAMi's chart lists 910A, 910B2, 910B3, 910B4, 910B4-1, "
        "310P3 and Ascend910)"
    ])  # fmt: skip


def load_options(settings: PluginSettings, devices: Sequence[PhysicalDevice]) -> AscendOptions:
    config = load_device_config(settings.device_config_file)
    chip = select_chip(config, [d.model for d in devices], f"file {settings.device_config_file}")
    node = (
        load_node_config(settings.node_config_file, settings.node_name)
        if settings.node_config_file
        else None
    )
    soft = config.ascend_soft_default
    if node is not None and node.hami_vnpu_core is not None:
        soft = node.hami_vnpu_core  # the node's entry replaces the cluster default, as HAMi
    return AscendOptions(
        chip=chip,
        soft=soft,
        split_count=split_count(chip, node),
        filter_uuids=frozenset(node.filter_devices.uuid) if node else frozenset(),
        filter_indexes=frozenset(node.filter_devices.index) if node else frozenset(),
    )
