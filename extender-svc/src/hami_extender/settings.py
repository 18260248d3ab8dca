"""The extender's settings (CLI > env ``HAMI_EXTENDER_*`` > ``--config-file`` > default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from hami_common.serving import HttpServerSettings
from hami_common.settings import (
    DeviceConfig,
    VendorTable,
    core_vendor_table,
    load_device_config,
)
from pydantic import Field


class ExtenderSettings(HttpServerSettings):
    """hami-extender: the kube-scheduler extender (filter, bind, explanation API)."""

    env_prefix: ClassVar[str] = "HAMI_EXTENDER_"

    host: str = Field(
        default="127.0.0.1",
        description="address to listen on. 127.0.0.1: only processes on this host (a "
        "kube-scheduler beside it) reach the port. Any other address (0.0.0.0: every "
        "interface) exposes /filter and /bind, which reserve devices and bind pods, to the "
        "network, so it needs --cert-file, --key-file and --client-ca-file: only clients with a "
        "certificate that CA signed (kube-scheduler's) may call the verbs",
    )
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=8080,
        description="port of /filter, /bind, health, metrics, explanations (0: a free one)",
    )
    metrics_port: Annotated[int, Field(ge=-1, le=65535)] = Field(
        default=9395,
        description="a second port serving only /metrics, on --host with the same TLS (no "
        "client certificate asked): HAMi's scheduler metrics port, which HAMi's chart and "
        "ServiceMonitor scrape; -1: none (/metrics stays on --port too)",
    )
    legacy_metrics: bool = Field(
        default=False,
        description="also export HAMi's old metric names (GPUDeviceMemoryLimit, "
        "nodeGPUOverview, ...), as HAMi's --legacy-metrics",
    )
    traces_url: str = Field(
        default="",
        description="the trace store's query URL (Jaeger's, e.g. http://jaeger:16686): the web "
        "UI links each pod's trace there (<url>/trace/<id>, and the JSON <url>/api/v3/traces/<id>)",
    )
    ui_refresh_seconds: Annotated[float, Field(ge=0, le=300)] = Field(
        default=2.0,
        description="the web UI's cluster summary is recomputed at most this often (at 5,000 "
        "nodes it takes ~0.1 s of CPU)",
    )
    cert_file: Path | None = Field(
        default=None, description="PEM certificate chain to serve HTTPS with (reloaded on change)"
    )
    key_file: Path | None = Field(default=None, description="PEM private key of --cert-file")
    client_ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle: /filter and /bind then answer 403 to a client without a "
        "certificate it signed (use a CA that signs kube-scheduler's client certificate, not "
        "every client's); health, metrics and explanations stay open to any TLS client",
    )
    cert_reload_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=10.0, description="how often the TLS files are checked for changes"
    )
    kubeconfig: Path | None = Field(
        default=None, description="kubeconfig for the API (default: KUBECONFIG, in-cluster)"
    )
    scheduler_name: str = Field(
        default="hami-scheduler",
        min_length=1,
        description="the schedulerName of the pods this extender places: /filter and /bind "
        "refuse a device pod of any other scheduler (kube-scheduler calls an extender for "
        "every profile); also the source component of the Events on pods",
    )
    node_scheduler_policy: Literal["binpack", "spread"] = Field(
        default="binpack", description="default node policy (pods may override by annotation)"
    )
    gpu_scheduler_policy: Literal["binpack", "spread", "topology-aware"] = Field(
        default="spread", description="default device policy (pods may override by annotation)"
    )
    device_config_file: Path | None = Field(
        default=None, description="HAMi device-config.yaml; HAMi's defaults when unset"
    )
    enable_ascend: bool = Field(
        default=False,
        description="manage Huawei Ascend NPUs: one vendor per chip of the device config's "
        "vnpus (HAMi's --enable-ascend); give the webhook the same",
    )
    node_label_selector: str = Field(
        default="", description="only nodes matching this label selector are registered"
    )
    persist_reservation: Literal["filter", "bind"] = Field(
        default="bind",
        description="when the allocation annotations are written: at bind (filter stays in "
        "memory, off the scheduler's critical path) or at filter (as HAMi does)",
    )
    prefer_idle_nodes: bool = Field(
        default=False,
        description="among fitting nodes, prefer those with the fewest allocations in flight "
        "(reserved and not bound, or being allocated), then apply the node policy: a burst "
        "then spreads its binds instead of queueing on one node, at the cost of bending the "
        "node policy (binpack no longer packs a burst); off: the node policy, with binpack's "
        "--burst-window",
    )
    burst_window: int = Field(
        default=4,
        ge=1,
        le=64,
        description="with binpack, the most nodes a burst allocates on at once (each node "
        "allocates one pod at a time): a pod goes to the node with the fewest allocations in "
        "flight among the nodes packing fills next with the pods still pending, so the burst "
        "ends on the nodes one-at-a-time packing would use; 1: the fullest node always, as HAMi",
    )
    node_lock: Literal["memory", "annotation"] = Field(
        default="memory",
        description="how at most one pod per node is allocated at a time (the device plugin "
        "finds the pod an Allocate is for as the one allocating on its node): memory, kept by "
        "this extender from the pods' bind-phase (no write to the node; right when this "
        "extender, through its Lease, is the only binder of HAMi-protocol pods), or "
        "annotation, HAMi's hami.io/mutex.lock on the node (two node writes per pod; needed "
        "when another HAMi-protocol scheduler binds to the same nodes)",
    )
    binding_events: bool = Field(
        default=False,
        description="write HAMi's BindingSucceed Event on every bound pod (kube-scheduler "
        "already records Scheduled; failures are always recorded)",
    )
    bind_metadata: Literal["auto", "binding", "patch"] = Field(
        default="auto",
        description="how the allocation annotations and the hami.io/vgpu-node label reach the "
        "pod at bind: on the Binding (one write; the API server copies a Binding's labels from "
        "Kubernetes 1.35), by a patch before it (as HAMi), or auto: the Binding when the API "
        "server is 1.35 or newer",
    )
    reservation_ttl_seconds: Annotated[float, Field(gt=0, le=86400)] = Field(
        default=120.0, description="a reservation not bound within this time is released"
    )
    sync_wait_seconds: Annotated[float, Field(ge=0, le=30)] = Field(
        default=5.0, description="how long /filter waits for the state to sync before an error"
    )
    lock_wait_seconds: Annotated[float, Field(ge=0, le=25)] = Field(
        default=20.0,
        description="how long bind waits for a node lock held by a live pod before it answers "
        "an error (kube-scheduler's bind runs beside the scheduling cycle, so this does not "
        "slow other pods; a refused bind costs the pod a backoff and a new filter, so the wait "
        "covers a burst's queue on one node; keep it under the extender httpTimeout)",
    )
    leader_elect: bool = Field(default=False, description="campaign for a coordination Lease")
    lease_name: str = Field(default="hami-extender", description="the Lease's name")
    lease_namespace: str = Field(default="kube-system", description="the Lease's namespace")
    lease_duration_seconds: Annotated[float, Field(ge=1, le=300)] = Field(
        default=8.0, description="a leader that stops renewing loses the Lease after this"
    )
    identity: str = Field(
        default="", description="this replica's Lease identity (default: hostname_pid)"
    )
    max_request_bytes: Annotated[int, Field(ge=1024, le=64 * 2**20)] = Field(
        default=8 * 2**20, description="largest /filter or /bind body accepted"
    )
    explain_capacity: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=10_000, description="how many pods' last decisions the explanation API keeps"
    )
    kube_qps_concurrency: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=50, description="most concurrent API requests of background writers (events)"
    )
    threads: Annotated[int, Field(ge=0, le=256)] = Field(
        default=0, description="filter worker threads in the core (0: one per CPU)"
    )
    log_level: str = Field(default="info", pattern=r"^(critical|error|warning|info|debug)$")

    def device_config(self) -> DeviceConfig:
        """The device config file's content, or HAMi's defaults when none is set."""
        if self.device_config_file is None:
            return DeviceConfig()
        return load_device_config(self.device_config_file)

    def vendors(self) -> VendorTable:
        """The core's vendor table from the device config: the webhook builds the same one."""
        return core_vendor_table(self.device_config(), enable_ascend=self.enable_ascend)
