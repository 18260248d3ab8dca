"""The Cambricon plugin's settings (CLI > env ``HAMI_PLUGIN_*`` > ``--config-file`` > default).

The resource names come from HAMi's device ConfigMap (``--device-config-file``, its
``cambricon:`` section; HAMi's defaults when unset): the count (``cambricon.com/vmlu``), which the
plugin serves with HAMi's allocation protocol, and the sMLU core and memory resources, which it
advertises so that node capacity carries them: HAMi reads its MLU inventory from that capacity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from hami_common.deviceplugin.service import DevicePluginSettings
from hami_common.settings import CambriconConfig, load_device_config
from pydantic import Field


class PluginSettings(DevicePluginSettings):
    """hami-plugin-cambricon: the Cambricon MLU device plugin (kubelet's device plugin API,
    HAMi's allocation protocol, sMLU instances through CNDev). Tracing: the standard OTEL_*
    variables."""

    device_config_file: Path | None = Field(
        default=None,
        description="HAMi's device-config.yaml (its cambricon: section); HAMi's defaults when "
        "unset",
    )
    split_count: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=100,
        description="containers that may share one MLU: the IDs per MLU of the count resource "
        "(HAMi counts 100 per MLU)",
    )
    memory_unit_mib: Annotated[int, Field(ge=1, le=65536)] = Field(
        default=256,
        description="MiB of one unit of the sMLU memory resource (HAMi's 256, Cambricon's "
        "min-dsmlu-unit)",
    )
    backend: Literal["cndev", "fake"] = Field(
        default="cndev",
        description="where MLUs come from: CNDev (libcndev.so), or fake: the device spec in "
        "--fake-spec",
    )
    cndev_library: str = Field(
        default="libcndev.so",
        description="the CNDev library to load (a name the loader finds, or a path such as "
        "/usr/local/neuware/lib64/libcndev.so)",
    )
    fake_spec: Path | None = Field(
        default=None,
        description="the fake backend's device spec, JSON or YAML: a list of MLUs, or "
        '{"devices": [...]}; an MLU is {"uuid": "MLU-...", "index": 0, "model": "MLU370-X8", '
        '"memory_mib": 24576, "numa": 0, "healthy": true} (index is its slot); the file is '
        "re-read for health changes",
    )
    health_interval: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=5.0, description="seconds between CNDev health checks of every MLU"
    )


def load_names(settings: PluginSettings) -> CambriconConfig:
    """The ``cambricon:`` section: the resource names."""
    if settings.device_config_file is None:
        return CambriconConfig()
    return load_device_config(settings.device_config_file).cambricon
