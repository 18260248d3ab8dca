"""HAMi's device ConfigMap (``device-config.yaml``), shared by the webhook, extender and plugins.

The file is HAMi v2.10's: top-level vendor sections, of which ``nvidia:`` is fully typed with
HAMi's defaults (reference §7.1), ``cambricon:`` and ``vnpus:`` (Ascend) are typed for the vendors
we implement next, and the other vendors' sections are accepted as opaque mappings so that a
HAMi chart's file loads unchanged. Keys keep HAMi's camelCase spelling on the wire; in Python the
fields are snake_case (``cfg.nvidia.device_split_count``).

Unknown keys and out-of-range values are errors that name the key path, e.g.
``nvidia.deviceSplitCount: Input should be greater than or equal to 1``.

Per-node plugin overrides (``config.json``, ``{"nodeconfig": [...]}``) are `NodeConfigFile`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from hami_common.settings.errors import SettingsError

_PROFILE = re.compile(r"^\d+g\.\w+$")

NonNegInt = Annotated[int, Field(ge=0)]
Percent = Annotated[int, Field(ge=0, le=100)]
ResourceName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9./_-]+$")]


class _Section(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown keys rejected, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class MigProfileAllowlistEntry(_Section):
    """GPU models (product-name substrings) and the MIG profiles allowed on them."""

    models: list[str] = Field(min_length=1)
    profiles: list[str] = Field(min_length=1)

    @field_validator("profiles")
    @classmethod
    def _profile_names(cls, profiles: list[str]) -> list[str]:
        for name in profiles:
            if not _PROFILE.match(name):
                raise ValueError(
                    f"MIG profile {name!r} must look like '<n>g.<size>', e.g. '1g.10gb'"
                )
        return profiles


class NvidiaConfig(_Section):
    """The ``nvidia:`` section; defaults are HAMi's built-in ones (§7.1)."""

    resource_count_name: ResourceName = "nvidia.com/gpu"
    resource_memory_name: ResourceName | Literal[""] = "nvidia.com/gpumem"
    resource_memory_percentage_name: ResourceName | Literal[""] = "nvidia.com/gpumem-percentage"
    resource_core_name: ResourceName | Literal[""] = "nvidia.com/gpucores"
    resource_priority_name: ResourceName | Literal[""] = "nvidia.com/priority"
    overwrite_env: bool = False
    default_memory: NonNegInt = 0
    default_cores: Percent = 0
    default_gpu_num: NonNegInt = Field(default=1, alias="defaultGPUNum")
    # 0 and 1 both mean "no scaling" (HAMi applies the factor only when it is > 1).
    memory_factor: NonNegInt = 1
    device_split_count: Annotated[int, Field(ge=1, le=1024)] = 10
    device_memory_scaling: Annotated[float, Field(gt=0, le=100)] = 1.0
    device_core_scaling: Annotated[float, Field(gt=0, le=100)] = 1.0
    pre_configured_device_memory: NonNegInt = 0
    enable_numa_topology: bool = False
    gpu_core_policy: Literal["default", "force", "disable"] = "default"
    lib_cuda_log_level: Annotated[int, Field(ge=0, le=4)] = 1
    runtime_class_name: str = ""
    disable_core_limit: bool = False
    mig_profile_allowlist: list[MigProfileAllowlistEntry] = Field(default_factory=list)
    # Legacy (pre-v2.9) dynamic-MIG geometries: accepted so old files load, otherwise unused.
    known_mig_geometries: list[Any] | None = None


class CambriconConfig(_Section):
    """The ``cambricon:`` section (§7.2); memory is in units of 256 MiB."""

    resource_count_name: ResourceName = "cambricon.com/vmlu"
    resource_memory_name: ResourceName = "cambricon.com/mlu.smlu.vmemory"
    resource_core_name: ResourceName = "cambricon.com/mlu.smlu.vcore"


class AscendTemplate(_Section):
    name: str = Field(min_length=1)
    memory: Annotated[int, Field(ge=1)]
    ai_core: NonNegInt = 0
    ai_cpu: NonNegInt = Field(default=0, alias="aiCPU")


class AscendChipConfig(_Section):
    """One chip of ``vnpus`` (reference §1.1): its common word is the vendor key."""

    chip_name: str = Field(min_length=1)
    common_word: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    resource_name: ResourceName
    resource_memory_name: ResourceName
    resource_core_name: ResourceName | Literal[""] = ""
    memory_allocatable: Annotated[int, Field(ge=1)]
    memory_capacity: NonNegInt = 0
    memory_factor: NonNegInt = 1
    ai_core: NonNegInt = 0
    ai_cpu: NonNegInt = Field(default=0, alias="aiCPU")
    runtime_class_name: str = ""
    overwrite_env: bool = False
    super_pod: bool = False
    templates: list[AscendTemplate] = Field(default_factory=list)


class AscendVnpus(_Section):
    """The ``vnpus:`` section: HAMi v2.10 writes ``{hamiVnpuCore, configs: [...]}``; older
    charts wrote the list of chips alone, which is read as ``configs``."""

    hami_vnpu_core: bool = False
    configs: list[AscendChipConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _legacy_list(cls, data: Any) -> Any:
        return {"configs": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _unique(self) -> AscendVnpus:
        seen: dict[str, str] = {}
        for chip in self.configs:
            names = [chip.common_word, chip.resource_name, chip.resource_memory_name]
            names += [chip.resource_core_name] if chip.resource_core_name else []
            for name in names:
                if name in seen:
                    # kube-scheduler refuses duplicate managed resources (HAMi #485)
                    raise ValueError(
                        f"{name!r} is used by two chips ({seen[name]} and {chip.chip_name}); "
                        "every chip needs its own commonWord and resource names"
                    )
                seen[name] = chip.chip_name
        return self


OpaqueSection = dict[str, Any] | None


class DeviceConfig(_Section):
    """The whole ``device-config.yaml``."""

    nvidia: NvidiaConfig = Field(default_factory=NvidiaConfig)
    cambricon: CambriconConfig = Field(default_factory=CambriconConfig)
    vnpus: AscendVnpus = Field(default_factory=AscendVnpus)
    # Accepted at the top level too (some hand-written files put it there).
    hami_vnpu_core: bool = False

    @property
    def ascend_soft_default(self) -> bool:
        """Whether NPUs take soft-split (hami-core) pods on nodes that do not say."""
        return self.vnpus.hami_vnpu_core or self.hami_vnpu_core

    # Vendors we do not implement yet: accepted as-is so that HAMi's chart file loads.
    hygon: OpaqueSection = None
    metax: OpaqueSection = None
    enflame: OpaqueSection = None
    mthreads: OpaqueSection = None
    iluvatars: list[dict[str, Any]] | None = None
    kunlun: OpaqueSection = None
    awsneuron: OpaqueSection = None
    amd: OpaqueSection = None
    vastai: OpaqueSection = None
    biren: OpaqueSection = None


class NvidiaNodeConfig(BaseModel):
    """One ``nodeconfig[]`` entry of the plugin's per-node ``config.json`` (lower-case keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    operatingmode: Literal["hami-core", "mig", "mps"] | None = None
    devicesplitcount: Annotated[int, Field(ge=1, le=1024)] | None = None
    devicememoryscaling: Annotated[float, Field(gt=0, le=100)] | None = None
    devicecorescaling: Annotated[float, Field(gt=0, le=100)] | None = None
    preconfigureddevicememory: NonNegInt | None = None
    libcudaloglevel: Annotated[int, Field(ge=0, le=4)] | None = None
    enablenumatopology: bool | None = None
    migstrategy: str | None = None
    filterdevices: dict[str, list[str | int]] | None = None
    enablegetpreferredallocation: bool | None = None


class NodeConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nodeconfig: list[NvidiaNodeConfig] = Field(default_factory=list)

    def for_node(self, node_name: str) -> NvidiaNodeConfig | None:
        return next((entry for entry in self.nodeconfig if entry.name == node_name), None)


def _validation_problems(where: str, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        problems.append(f"{where}: {path}: {err['msg']}" if path else f"{where}: {err['msg']}")
    return problems


def parse_device_config(data: Any, where: str = "device config") -> DeviceConfig:
    """Validate an already-parsed mapping (None or {} gives the defaults)."""
    try:
        return DeviceConfig.model_validate(data or {})
    except ValidationError as exc:
        raise SettingsError(_validation_problems(where, exc)) from None


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError([f"file {path}: cannot read it ({exc})"]) from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SettingsError([f"file {path}: not valid YAML or JSON: {exc}"]) from None


def load_device_config(path: Path) -> DeviceConfig:
    """Load HAMi's ``device-config.yaml`` (YAML or JSON)."""
    return parse_device_config(_read(path), f"file {path}")


def load_node_config(path: Path) -> NodeConfigFile:
    """Load the plugin's per-node ``config.json`` (``{"nodeconfig": [...]}``)."""
    try:
        return NodeConfigFile.model_validate(_read(path) or {})
    except ValidationError as exc:
        raise SettingsError(_validation_problems(f"file {path}", exc)) from None
