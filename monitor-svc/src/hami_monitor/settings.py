"""The monitor's settings (CLI > env ``HAMI_MONITOR_*`` > ``--config-file`` > default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from hami_common.serving import HttpServerSettings
from pydantic import Field


class MonitorSettings(HttpServerSettings):
    """hami-monitor: the node monitor. Exports HAMi's monitor metrics (per-container usage read
    from the hook's shared regions, the node's devices as their driver reports them) and runs
    HAMi's priority feedback loop."""

    env_prefix: ClassVar[str] = "HAMI_MONITOR_"

    node_name: Annotated[str, Field(min_length=1)] = Field(
        description="this node; the DaemonSet passes spec.nodeName (also read from NODE_NAME)"
    )
    host: str = Field(
        default="127.0.0.1",
        description="address to listen on; any address but loopback needs --cert-file and "
        "--key-file (Prometheus then scrapes over HTTPS)",
    )
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=9394, description="port of /metrics, /healthz, /readyz (HAMi's monitor port)"
    )
    cert_file: Path | None = Field(
        default=None, description="PEM certificate chain to serve HTTPS with (reloaded on change)"
    )
    key_file: Path | None = Field(default=None, description="PEM private key of --cert-file")
    cert_reload_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=10.0, description="how often the TLS files are checked for changes"
    )
    hook_path: Path = Field(
        default=Path("/usr/local"),
        description="the device plugin's --hook-path (HAMi's HOOK_PATH): the containers' "
        "regions are in <hook-path>/vgpu/containers/<pod uid>_<container>/",
    )
    kubeconfig: Path | None = Field(
        default=None, description="kubeconfig for the API (default: KUBECONFIG, in-cluster)"
    )
    vendor: Literal["nvidia", "none"] = Field(
        default="nvidia",
        description="where the devices' own numbers come from (hami_monitor.devices.SOURCES): "
        "nvidia (NVML), none (only the containers' regions)",
    )
    legacy_metrics: bool = Field(
        default=False,
        description="also export HAMi's old metric names (HostGPUMemoryUsage, "
        "vGPU_device_memory_usage_in_bytes, ...), as HAMi's --legacy-metrics",
    )
    feedback: bool = Field(
        default=True,
        description="run HAMi's priority feedback loop (write each region's util_switch and "
        "priority hold); off: read only",
    )
    feedback_interval_seconds: Annotated[float, Field(ge=0.05, le=60)] = Field(
        default=5.0,
        description="how often the feedback loop runs (HAMi: 5 s); a container counts as "
        "active for two periods after its last kernel launch",
    )
    reap_after_seconds: Annotated[float, Field(ge=0, le=86400)] = Field(
        default=300.0,
        description="a container folder whose pod is not on this node and that has not "
        "changed for this long is removed, with its limits file (HAMi: the resync interval)",
    )
    log_level: str = Field(default="info", pattern=r"^(critical|error|warning|info|debug)$")
