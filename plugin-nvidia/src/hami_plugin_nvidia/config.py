"""The NVIDIA plugin's settings and its effective device options.

Process settings (`PluginSettings`, CLI > env ``HAMI_PLUGIN_*`` > ``--config-file`` > default)
say where things are; HAMi's device ConfigMap (``--device-config-file``, the ``nvidia:``
section) and the per-node ``config.json`` (``--node-config-file``) say how devices are shared.
`effective_options` merges the last two, the node entry winning, into `NvidiaOptions`. Every
invalid value is a `SettingsError` that names the key and the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from hami_common.deviceplugin.service import DevicePluginSettings
from hami_common.settings import (
    NvidiaConfig,
    NvidiaNodeConfig,
    SettingsError,
    load_device_config,
    load_node_config,
)
from pydantic import Field, model_validator

_T = TypeVar("_T")


class PluginSettings(DevicePluginSettings):
    """hami-plugin-nvidia: the NVIDIA device plugin (kubelet's device plugin API, HAMi's node
    registration and allocation protocol). Tracing: the standard OTEL_* variables."""

    device_config_file: Path | None = Field(
        default=None,
        description="HAMi's device-config.yaml (its nvidia: section); HAMi's defaults when unset",
    )
    node_config_file: Path | None = Field(
        default=None, description='HAMi\'s per-node config.json ({"nodeconfig": [...]})'
    )
    hook_path: Path = Field(
        default=Path("/usr/local"),
        description="HAMi's HOOK_PATH: the hook library and per-container folders in "
        "<hook-path>/vgpu",
    )
    lock_dir: Path = Field(
        default=Path("/tmp/vgpulock"),  # noqa: S108 (HAMi-core's fixed lock folder)
        description="host folder mounted at /tmp/vgpulock in every container",
    )
    hook_version: str = Field(
        default="0.1.0",
        description="mount <hook-path>/vgpu/libvgpu.so.<hook-version> when it exists "
        "(as HAMi does), else libvgpu.so",
    )
    enable_topology_score: bool = Field(
        default=False,
        description="publish hami.io/node-nvidia-score (HAMi's ENABLE_TOPOLOGY_SCORE)",
    )
    scheduler: Literal["kube-scheduler", "volcano"] = Field(
        default="kube-scheduler",
        description="the scheduler that places GPU pods: kube-scheduler with HAMi's extender "
        "(HAMi's annotations and resource), or volcano-scheduler's deviceshare plugin with "
        "VGPUEnable (volcano.sh/node-vgpu-register and the volcano.sh/vgpu-number, "
        "vgpu-memory and vgpu-cores resources)",
    )
    gpu_memory_factor: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=1,
        description="with --scheduler volcano: MiB per volcano.sh/vgpu-memory unit "
        "(volcano-vgpu-device-plugin's --gpu-memory-factor); kubelet tracks one ID per unit, "
        "so large GPUs want a factor",
    )
    backend: Literal["nvml", "fake"] = Field(
        default="nvml",
        description="where devices come from: NVML, or fake: the device spec in --fake-spec",
    )
    fake_spec: Path | None = Field(
        default=None,
        description="the fake backend's device spec, JSON or YAML: a list of devices, or "
        '{"devices": [...], "init_error": "..."}; a device is {"uuid": "GPU-...", "index": 0, '
        '"model": "Tesla T4", "memory_mib": 15360, "numa": 0, "healthy": true, "links": '
        '{"GPU-other": {"p2p": "SameBoard", "nvlinks": 2}}, "fail": "query|health|links"}; '
        "only uuid is required; the file is re-read for health changes",
    )
    register_interval: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="seconds between node annotation checks (health changes are published at once)",
    )
    dra: bool = Field(
        default=False,
        description="run as a DRA driver instead of a device plugin: publish the node's "
        "ResourceSlice and serve kubelet's DRA plugin API (Kubernetes >= 1.34 with "
        "DRAConsumableCapacity, on by default from 1.36)",
    )
    dra_driver_name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")] = Field(
        default="gpu.hami.io", description="the DRA driver name (DeviceClass selectors match it)"
    )
    dra_plugins_dir: Path = Field(
        default=Path("/var/lib/kubelet/plugins"),
        description="kubelet's plugin folder: the DRA socket and checkpoint go to <dir>/<driver>",
    )
    dra_registry_dir: Path = Field(
        default=Path("/var/lib/kubelet/plugins_registry"),
        description="kubelet's plugin registry folder: <driver>-reg.sock goes there",
    )
    cdi_dir: Path = Field(
        default=Path("/var/run/cdi"), description="where the DRA driver writes a CDI spec per claim"
    )
    mig_strategy: Literal["none", "single", "mixed"] = Field(
        default="none",
        description="static MIG (HAMi's --mig-strategy, also read from MIG_STRATEGY): mixed "
        "serves each MIG profile's existing instances as nvidia.com/mig-<profile>; single "
        "serves them under the plugin's resource (nvidia.com/gpu) when every GPU is in MIG "
        "mode with instances of one profile; MIG-mode GPUs are then not shared as whole GPUs",
    )
    mps_dir: Path = Field(
        default=Path("/var/lib/hami/mps"),
        description="MPS mode: per-GPU MPS pipe and log folders (<mps-dir>/<GPU-UUID>/pipe, "
        "mounted into the containers)",
    )
    mps_shm_dir: Path = Field(
        default=Path("/dev/shm"),  # noqa: S108
        description="MPS mode: the host folder that is the MPS daemons' /dev/shm (the shared "
        "memory of an MPS server and its clients), mounted at /dev/shm in MPS containers; when "
        "the plugin runs in a container, mount that host folder at its /dev/shm",
    )
    mps_control: str = Field(
        default="nvidia-cuda-mps-control",
        description="MPS mode: the MPS control program that starts a GPU's daemon (-d)",
    )

    @model_validator(mode="after")
    def _factor_needs_volcano(self) -> PluginSettings:
        if self.gpu_memory_factor != 1 and self.scheduler != "volcano":
            raise ValueError(
                f"--gpu-memory-factor {self.gpu_memory_factor} applies with --scheduler volcano "
                "only (HAMi's path counts memory in MiB): drop it or add --scheduler volcano"
            )
        return self


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
    mig_strategy: str = "none"
    mig_allowlist: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    """(models, profiles) entries of ``migProfileAllowlist``."""
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
        if entry.operatingmode not in (None, "hami-core", "mig", "mps"):
            raise SettingsError(
                [
                    f"{where}.operatingmode: {entry.operatingmode!r} is not supported; "
                    "use 'hami-core', 'mig' or 'mps'"
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
        operating_mode=e.operatingmode or "hami-core",
        mig_allowlist=tuple(
            (tuple(a.models), tuple(a.profiles)) for a in nvidia.mig_profile_allowlist
        ),
    )


def _or(override: _T | None, default: _T) -> _T:
    return default if override is None else override


def load_options(settings: PluginSettings) -> NvidiaOptions:
    nvidia = (
        load_device_config(settings.device_config_file).nvidia
        if settings.device_config_file
        else NvidiaConfig()
    )
    options = effective_options(
        nvidia, settings.node_name, settings.node_config_file, settings.enable_topology_score
    )
    if settings.scheduler == "volcano" and options.operating_mode in ("mig", "mps"):
        raise SettingsError([
            f"operatingmode: {options.operating_mode} is not served in volcano mode (--scheduler "
            "volcano allocates volcano's vGPU shares through the hook): use hami-core on this "
            "node, or the kube-scheduler path for MIG and MPS"
        ])  # fmt: skip
    if settings.mig_strategy != "none" and (settings.scheduler == "volcano" or settings.dra):
        path = "--scheduler volcano" if settings.scheduler == "volcano" else "--dra"
        raise SettingsError([
            f"mig_strategy (--mig-strategy, MIG_STRATEGY): {settings.mig_strategy} serves MIG "
            f"instances as device-plugin resources, which {path} does not serve: use "
            "--mig-strategy none there, or the device-plugin path with kube-scheduler"
        ])  # fmt: skip
    return replace(options, mig_strategy=settings.mig_strategy)
