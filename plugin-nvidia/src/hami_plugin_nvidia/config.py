"""The NVIDIA plugin's settings and its effective device options.

Process settings (`PluginSettings`, CLI > env ``HAMI_PLUGIN_*`` > ``--config-file`` > default)
say where things are; HAMi's device ConfigMap (``--device-config-file``, the ``nvidia:``
section) and the per-node ``config.json`` (``--node-config-file``) say how devices are shared.
`effective_options` merges the last two, the node entry winning, into `NvidiaOptions`. Every
invalid value is a `SettingsError` that names the key and the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar, Literal, TypeVar

from hami_common.settings import (
    NvidiaConfig,
    NvidiaNodeConfig,
    ServiceSettings,
    SettingsError,
    load_device_config,
    load_node_config,
)
from pydantic import Field

_T = TypeVar("_T")


class PluginSettings(ServiceSettings):
    env_prefix: ClassVar[str] = "HAMI_PLUGIN_"

    node_name: Annotated[str, Field(min_length=1)]
    """This node (the DaemonSet passes ``spec.nodeName``)."""
    device_config_file: Path | None = None
    """HAMi's ``device-config.yaml``; absent means HAMi's defaults."""
    node_config_file: Path | None = None
    """HAMi's per-node ``config.json`` (``{"nodeconfig": [...]}``)."""
    plugin_dir: Path = Path("/var/lib/kubelet/device-plugins")
    register_with_kubelet: bool = True
    hook_path: Path = Path("/usr/local")
    """HAMi's ``HOOK_PATH``: the hook library is in ``<hook_path>/vgpu``."""
    lock_dir: Path = Path("/tmp/vgpulock")  # noqa: S108 (HAMi-core's fixed lock folder)
    enable_topology_score: bool = False
    """Publish ``hami.io/node-nvidia-score`` (HAMi's ``ENABLE_TOPOLOGY_SCORE``)."""
    backend: Literal["nvml", "fake"] = "nvml"
    fake_spec: Path | None = None
    """The device spec of the fake backend (``--backend fake``)."""
    kubeconfig: Path | None = None
    """Default: ``$KUBECONFIG``, ``~/.kube/config``, then in-cluster."""
    register_interval: Annotated[float, Field(gt=0, le=3600)] = 30.0
    socket_poll_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    version: str = "0.1.0"
    """Used to pick ``libvgpu.so.<version>`` when it exists (as HAMi does)."""


@dataclass(frozen=True)
class NvidiaOptions:
    """How devices are shared on this node: the ``nvidia:`` section with the node's overrides."""

    resource_name: str = "nvidia.com/gpu"
    priority_resource: str = "nvidia.com/priority"
    split_count: int = 10
    memory_scaling: float = 1.0
    core_scaling: float = 1.0
    preconfigured_memory_mib: int = 0
    lib_cuda_log_level: int = 1
    gpu_core_policy: str = "default"
    disable_core_limit: bool = False
    numa_topology: bool = False
    preferred_allocation: bool = False
    operating_mode: str = "hami-core"
    filter_uuids: frozenset[str] = field(default_factory=frozenset)
    filter_indexes: frozenset[int] = field(default_factory=frozenset)
    topology_score: bool = False


def effective_options(
    nvidia: NvidiaConfig, node: str, node_config_file: Path | None, topology_score: bool = False
) -> NvidiaOptions:
    entry = load_node_config(node_config_file).for_node(node) if node_config_file else None
    where = f"file {node_config_file}: nodeconfig[name={node}]"
    uuids: set[str] = set()
    indexes: set[int] = set()
    if entry is not None:
        if entry.operatingmode not in (None, "hami-core"):
            raise SettingsError(
                [
                    f"{where}.operatingmode: {entry.operatingmode!r} is not supported yet; "
                    "use 'hami-core'"
                ]
            )
        filters = entry.filterdevices or {}
        unknown = set(filters) - {"uuid", "index"}
        if unknown:
            raise SettingsError([f"{where}.filterdevices: unknown key(s) {sorted(unknown)}"])
        for value in filters.get("uuid", []):
            if not isinstance(value, str):
                raise SettingsError([f"{where}.filterdevices.uuid: {value!r} is not a string"])
            uuids.add(value)
        for value in filters.get("index", []):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SettingsError(
                    [f"{where}.filterdevices.index: {value!r} is not a device index"]
                )
            indexes.add(value)

    e = entry if entry is not None else NvidiaNodeConfig(name=node)
    return NvidiaOptions(
        resource_name=nvidia.resource_count_name,
        priority_resource=nvidia.resource_priority_name,
        split_count=_or(e.devicesplitcount, nvidia.device_split_count),
        memory_scaling=_or(e.devicememoryscaling, nvidia.device_memory_scaling),
        core_scaling=_or(e.devicecorescaling, nvidia.device_core_scaling),
        preconfigured_memory_mib=_or(
            e.preconfigureddevicememory, nvidia.pre_configured_device_memory
        ),
        lib_cuda_log_level=_or(e.libcudaloglevel, nvidia.lib_cuda_log_level),
        gpu_core_policy=nvidia.gpu_core_policy,
        disable_core_limit=nvidia.disable_core_limit,
        numa_topology=_or(e.enablenumatopology, nvidia.enable_numa_topology),
        preferred_allocation=bool(e.enablegetpreferredallocation),
        filter_uuids=frozenset(uuids),
        filter_indexes=frozenset(indexes),
        topology_score=topology_score,
    )


def _or(override: _T | None, default: _T) -> _T:
    return default if override is None else override


def load_options(settings: PluginSettings) -> NvidiaOptions:
    nvidia = (
        load_device_config(settings.device_config_file).nvidia
        if settings.device_config_file
        else NvidiaConfig()
    )
    return effective_options(
        nvidia, settings.node_name, settings.node_config_file, settings.enable_topology_score
    )
