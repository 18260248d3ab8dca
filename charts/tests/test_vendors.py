"""Rendered manifests of the vendor subcharts and the node monitor: a cluster with only Ascend
nodes (the scheduler and `ascend`), only Cambricon nodes, the monitor on and off, the extender's
metrics port and the Grafana dashboard. What the services read from them is read back with the
services' own loaders."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from hami_common.settings.device_config import parse_device_config
from hami_e2e.charts.helm import Helm, find, one
from hami_e2e.paths import repo_root
from hami_extender.settings import ExtenderSettings
from hami_monitor.settings import MonitorSettings
from hami_plugin_ascend.config import AscendNodeConfigFile, select_chip
from hami_plugin_ascend.config import PluginSettings as AscendSettings
from hami_plugin_cambricon.config import PluginSettings as CambriconSettings
from hami_webhook.settings import WebhookSettings

Json = dict[str, Any]
ONLY_ASCEND = {"nvidia": {"enabled": False}, "monitor": {"enabled": False},
               "ascend": {"enabled": True}, "scheduler": {"enableAscend": True}}  # fmt: skip
ONLY_CAMBRICON = {"nvidia": {"enabled": False}, "monitor": {"enabled": False},
                  "cambricon": {"enabled": True}}  # fmt: skip
# HAMi's chart chips (its device-config.yaml): the commonWord of each
ASCEND_CHIPS = ["Ascend910A", "Ascend910B2", "Ascend910B3", "Ascend910B4-1", "Ascend910B4",
                "Ascend310P", "Ascend910C"]  # fmt: skip


def names(docs: list[Json]) -> set[str]:
    return {f"{d['kind']}/{d['metadata']['name']}" for d in docs}


def pod_spec(docs: list[Json], kind: str, name: str) -> Json:
    return dict(one(docs, kind, name)["spec"]["template"]["spec"])


def main_container(docs: list[Json], kind: str, name: str) -> Json:
    return dict(pod_spec(docs, kind, name)["containers"][0])


def managed(docs: list[Json]) -> list[str]:
    config = yaml.safe_load(one(docs, "ConfigMap", "hami-scheduler")["data"]["config.yaml"])
    return [r["name"] for r in config["extenders"][0]["managedResources"]]


def host_paths(spec: Json) -> list[str]:
    return sorted(v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v)


@pytest.fixture(scope="module")
def only_ascend(helm: Helm, charts: dict[str, Path]) -> list[Json]:
    return helm.template(charts["hami"], ONLY_ASCEND)


def test_only_ascend_installs_the_scheduler_and_its_plugin(
    only_ascend: list[Json], helm: Helm, charts: dict[str, Path]
) -> None:
    assert [d["metadata"]["name"] for d in find(only_ascend, "DaemonSet")] == [
        "hami-ascend-device-plugin"]  # fmt: skip
    assert len(find(only_ascend, "Deployment")) == 3
    # the Ascend chart alone renders what the umbrella renders for it
    alone = helm.template(charts["hami-ascend"])
    scheduler = helm.template(charts["hami-scheduler"], {"enableAscend": True})
    assert names(alone) | names(scheduler) == names(only_ascend)
    assert names(alone) == {
        "ServiceAccount/hami-ascend-device-plugin", "ConfigMap/hami-ascend-device-plugin",
        "ClusterRole/hami-ascend-device-plugin", "ClusterRoleBinding/hami-ascend-device-plugin",
        "DaemonSet/hami-ascend-device-plugin"}  # fmt: skip


def test_ascend_is_placed_only_with_enable_ascend(
    only_ascend: list[Json], helm: Helm, charts: dict[str, Path]
) -> None:
    """HAMi's --enable-ascend for the webhook and the extender, and the 21 names of HAMi's
    seven chips managed by the extender; without it, neither (HAMi's default)."""
    extender = main_container(only_ascend, "Deployment", "hami-extender")
    webhook = main_container(only_ascend, "Deployment", "hami-webhook")
    assert ExtenderSettings.load(extender["args"], {}, prog="hami-extender").enable_ascend
    assert WebhookSettings.load(webhook["args"], {}, prog="hami-webhook").enable_ascend
    huawei = [n for n in managed(only_ascend) if n.startswith("huawei.com/")]
    assert huawei == [f"huawei.com/{cw}{suffix}" for cw in ASCEND_CHIPS
                      for suffix in ("", "-memory", "-core")]  # fmt: skip
    expression = one(only_ascend, "MutatingWebhookConfiguration", "hami-webhook")["webhooks"][0][
        "matchConditions"][0]["expression"]  # fmt: skip
    assert '"huawei.com/Ascend910B3-memory"' in expression
    default = helm.template(charts["hami"])
    assert not [n for n in managed(default) if n.startswith("huawei.com/")]
    for name in ("hami-extender", "hami-webhook"):
        assert "--enable-ascend" not in main_container(default, "Deployment", name)["args"]


def test_the_ascend_plugin_reads_the_rendered_settings(only_ascend: list[Json]) -> None:
    plugin = main_container(only_ascend, "DaemonSet", "hami-ascend-device-plugin")
    assert plugin["command"] == ["python3", "-m", "hami_plugin_ascend"]
    settings = AscendSettings.load(plugin["args"], {"NODE_NAME": "n"}, prog="hami-plugin-ascend")
    assert settings.dcmi_library == "/usr/local/Ascend/driver/lib64/driver/libdcmi.so"
    env = {e["name"]: e.get("value") for e in plugin["env"]}
    assert env["LD_LIBRARY_PATH"] == (
        "/usr/local/Ascend/driver/lib64/driver:/usr/local/Ascend/driver/lib64/common")  # fmt: skip
    data = one(only_ascend, "ConfigMap", "hami-ascend-device-plugin")["data"]
    scheduler_side = one(only_ascend, "ConfigMap", "hami-scheduler-device")["data"]
    assert data["device-config.yaml"] == scheduler_side["device-config.yaml"]
    config = parse_device_config(yaml.safe_load(data["device-config.yaml"]))
    assert [c.common_word for c in config.vnpus.configs] == ASCEND_CHIPS
    assert select_chip(config, ["910B3"], "chart").common_word == "Ascend910B3"
    assert not config.ascend_soft_default
    AscendNodeConfigFile.model_validate(yaml.safe_load(data["node-config.yaml"]))
    mounts = {m["name"]: m["mountPath"] for m in plugin["volumeMounts"]}
    assert str(settings.node_config_file).startswith(mounts["node-config"])
    assert str(settings.device_config_file).startswith(mounts["config"])


def test_vendor_plugins_are_privileged_for_their_devices_and_nothing_else(
    helm: Helm, charts: dict[str, Path]
) -> None:
    """DCMI and CNDev open the vendor's management device nodes, which only a privileged
    container's device cgroup allows (charts/README.md, Privileges): privileged, as root, but
    no host namespace, a read-only root filesystem, and only kubelet's folder, the vendor's
    library folder (read-only) and, for Ascend, the hami-core hook folder from the host."""
    docs = helm.template(charts["hami"], {**ONLY_ASCEND, "cambricon": {"enabled": True}})
    wanted = {
        "hami-ascend-device-plugin": ["/usr/local/Ascend/driver", "/usr/local/hami-vnpu-core",
                                      "/var/lib/kubelet/device-plugins"],
        "hami-cambricon-device-plugin": ["/usr/local/neuware",
                                         "/var/lib/kubelet/device-plugins"],
    }  # fmt: skip
    for name, paths in wanted.items():
        spec = pod_spec(docs, "DaemonSet", name)
        assert not spec.get("hostNetwork")
        assert not spec.get("hostPID")
        assert not spec.get("hostIPC")
        assert host_paths(spec) == paths
        [c] = spec["containers"]
        sc = c["securityContext"]
        assert (sc["privileged"], sc["runAsUser"], sc["readOnlyRootFilesystem"]) == (True, 0, True)
        library = [m for m in c["volumeMounts"] if m["name"] in ("driver", "neuware")]
        assert [m["readOnly"] for m in library] == [True]
    assert pod_spec(docs, "DaemonSet", "hami-ascend-device-plugin")["nodeSelector"] == {
        "ascend": "on"}  # fmt: skip
    assert pod_spec(docs, "DaemonSet", "hami-cambricon-device-plugin")["nodeSelector"] == {
        "mlu": "on"}  # fmt: skip


def test_only_cambricon(helm: Helm, charts: dict[str, Path]) -> None:
    docs = helm.template(charts["hami"], ONLY_CAMBRICON)
    assert [d["metadata"]["name"] for d in find(docs, "DaemonSet")] == [
        "hami-cambricon-device-plugin"]  # fmt: skip
    alone = helm.template(charts["hami-cambricon"])
    assert names(alone) | names(helm.template(charts["hami-scheduler"])) == names(docs)
    assert "cambricon.com/vmlu" in managed(docs)  # always, as HAMi
    assert not [n for n in managed(docs) if n.startswith("huawei.com/")]
    plugin = main_container(docs, "DaemonSet", "hami-cambricon-device-plugin")
    assert plugin["command"] == ["python3", "-m", "hami_plugin_cambricon"]
    settings = CambriconSettings.load(plugin["args"], {"NODE_NAME": "n"},
                                      prog="hami-plugin-cambricon")  # fmt: skip
    assert settings.cndev_library == "/usr/local/neuware/lib64/libcndev.so"
    assert (settings.split_count, settings.memory_unit_mib) == (100, 256)
    data = one(docs, "ConfigMap", "hami-cambricon-device-plugin")["data"]
    config = parse_device_config(yaml.safe_load(data["device-config.yaml"]))
    assert config.cambricon.resource_count_name == "cambricon.com/vmlu"


MONITOR = {"ServiceAccount/hami-monitor", "ClusterRole/hami-monitor",
           "ClusterRoleBinding/hami-monitor", "Secret/hami-monitor-tls", "Service/hami-monitor",
           "DaemonSet/hami-monitor"}  # fmt: skip


def test_monitor_on_and_off(helm: Helm, charts: dict[str, Path]) -> None:
    on = helm.template(charts["hami"])
    off = helm.template(charts["hami"], {"monitor": {"enabled": False}})
    assert names(on) - names(off) == MONITOR
    assert names(helm.template(charts["hami-monitor"])) == MONITOR
    rules = one(on, "ClusterRole", "hami-monitor")["rules"]
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]


def test_the_monitor_runs_unprivileged_with_hamis_ports(
    helm: Helm, charts: dict[str, Path]
) -> None:
    docs = helm.template(charts["hami"], {"monitor": {"service": {"type": "NodePort"}}})
    spec = pod_spec(docs, "DaemonSet", "hami-monitor")
    assert spec["nodeSelector"] == {"gpu": "on"}
    assert spec["securityContext"]["runAsUser"] == spec["securityContext"]["runAsGroup"] == 65532
    assert host_paths(spec) == ["/usr/local/vgpu/containers", "/usr/local/vgpu/limits"]
    [c] = spec["containers"]
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert not c["securityContext"].get("privileged")
    assert c["ports"] == [{"name": "metrics", "containerPort": 9394}]
    settings = MonitorSettings.load(c["args"], {"NODE_NAME": "n"}, prog="hami-monitor")
    assert (settings.host, settings.port, str(settings.hook_path)) == ("0.0.0.0", 9394,
                                                                      "/usr/local")  # fmt: skip
    assert settings.reap_after_seconds == 300  # HAMi's resync interval
    service = one(docs, "Service", "hami-monitor")["spec"]
    assert service["ports"] == [{"name": "monitorport", "port": 31992, "targetPort": "metrics",
                                 "nodePort": 31992}]  # fmt: skip
    secret = one(docs, "Secret", "hami-monitor-tls")["data"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["tls.crt"]))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "hami-monitor.kube-system.svc", "hami-monitor.kube-system.svc.cluster.local"]  # fmt: skip
    cert.verify_directly_issued_by(
        x509.load_pem_x509_certificate(base64.b64decode(secret["ca.crt"])))  # fmt: skip


def test_the_extender_serves_its_metrics_on_hamis_port(helm: Helm, charts: dict[str, Path]) -> None:
    docs = helm.template(charts["hami"], {"scheduler": {"service": {"type": "NodePort"}}})
    extender = main_container(docs, "Deployment", "hami-extender")
    assert {"name": "metrics", "containerPort": 9395} in extender["ports"]
    assert ExtenderSettings.load(extender["args"], {}, prog="hami-extender").metrics_port == 9395
    ports = one(docs, "Service", "hami-extender")["spec"]["ports"]
    monitor = next(p for p in ports if p["name"] == "monitor")
    assert monitor == {"name": "monitor", "port": 31993, "targetPort": "metrics",
                       "nodePort": 31993}  # fmt: skip


def test_the_dashboard_is_shipped_for_grafanas_sidecar(helm: Helm, charts: dict[str, Path]) -> None:
    docs = helm.template(charts["hami"])
    config = one(docs, "ConfigMap", "hami-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["namespace"] == "kube-system"
    shipped = json.loads(config["data"]["hami-rs.json"])
    assert shipped == json.loads((repo_root() / "dashboards" / "hami-rs.json").read_text())
    moved = helm.template(charts["hami"], {"scheduler": {"dashboard": {
        "namespace": "monitoring", "labels": {"grafana_dashboard": "hami"},
        "annotations": {"grafana_folder": "HAMi"}}}})  # fmt: skip
    meta = one(moved, "ConfigMap", "hami-dashboard")["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["grafana_dashboard"] == "hami"
    assert meta["annotations"] == {"grafana_folder": "HAMi"}
    off = helm.template(charts["hami"], {"scheduler": {"dashboard": {"enabled": False}}})
    assert not find(off, "ConfigMap", "hami-dashboard")


def test_every_chart_holds_the_umbrellas_global_values(charts: dict[str, Path]) -> None:
    """Helm gives a subchart installed alone its own values.yaml's global: every copy must be
    the umbrella's, or a subchart alone renders another device config."""
    umbrella = yaml.safe_load((charts["hami"] / "values.yaml").read_text())["global"]
    for name, folder in charts.items():
        own = yaml.safe_load((folder / "values.yaml").read_text())["global"]
        assert own == umbrella, f"{name}/values.yaml: global differs from the umbrella's"
