"""The webhook's settings (CLI > env ``HAMI_WEBHOOK_*`` > ``--config-file`` > default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from hami_common.serving import HttpServerSettings
from hami_common.settings import DeviceConfig, load_device_config
from pydantic import Field


class WebhookSettings(HttpServerSettings):
    """hami-webhook: the mutating admission webhook for accelerator-sharing pods."""

    env_prefix: ClassVar[str] = "HAMI_WEBHOOK_"

    host: str = Field(
        default="127.0.0.1",
        description="address to listen on: 127.0.0.1 reaches only this host (an API server on "
        "it); 0.0.0.0 (every interface, as in a Deployment) exposes admission, /metrics and "
        "health to the network, over TLS (the webhook serves TLS only)",
    )
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=8443, description="HTTPS port (0 picks a free one)"
    )
    cert_file: Path | None = Field(default=None, description="PEM certificate chain (required)")
    key_file: Path | None = Field(default=None, description="PEM private key (required)")
    cert_reload_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=10.0, description="how often the certificate files are checked for changes"
    )
    scheduler_name: str = Field(
        default="hami-scheduler",
        description="schedulerName set on device pods; empty leaves schedulerName alone",
    )
    force_overwrite_default_scheduler: bool = Field(
        default=True, description="also take over pods that name default-scheduler"
    )
    device_config_file: Path | None = Field(
        default=None, description="HAMi device-config.yaml; HAMi's defaults when unset"
    )
    enable_ascend: bool = Field(
        default=False,
        description="manage Huawei Ascend NPUs: one vendor per chip of the device config's "
        "vnpus (HAMi's --enable-ascend); give the extender the same",
    )
    quota_check: bool = Field(
        default=True, description="check namespace ResourceQuota limits.<gpumem|gpucores>"
    )
    namespace_check: bool = Field(
        default=True, description="honour the hami.io/webhook=ignore label on namespaces"
    )
    api_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = Field(
        default=3.0,
        description="bound on each quota or namespace lookup (keep well under the webhook's "
        "timeoutSeconds); a lookup that takes longer lets the pod through",
    )
    dra: bool = Field(
        default=False,
        description="turn NVIDIA requests (nvidia.com/gpu, gpumem, gpucores) into a "
        "ResourceClaim of the DRA driver (from a ResourceClaimTemplate the webhook creates), "
        "for kube-scheduler's own DRA allocation instead of the extender",
    )
    dra_device_class: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")] = Field(
        default="gpu.hami.io", description="the DeviceClass the claims ask (--dra)"
    )
    dra_driver_name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")] = Field(
        default="gpu.hami.io",
        description="the DRA driver (its uuid attribute keeps a multi-GPU claim's devices apart)",
    )
    kubeconfig: Path | None = Field(
        default=None, description="kubeconfig for the API (default: KUBECONFIG, in-cluster)"
    )
    max_request_bytes: Annotated[int, Field(ge=1024, le=64 * 2**20)] = Field(
        default=3 * 2**20, description="largest AdmissionReview body accepted"
    )
    log_level: str = Field(default="info", pattern=r"^(critical|error|warning|info|debug)$")

    def device_config(self) -> DeviceConfig:
        """The device config file's content, or HAMi's defaults when none is set."""
        if self.device_config_file is None:
            return DeviceConfig()
        return load_device_config(self.device_config_file)

    @property
    def uses_kube_api(self) -> bool:
        return self.quota_check or self.namespace_check or self.dra
