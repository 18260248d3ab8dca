"""Rendered manifests (``helm template``) of the defaults and of the value sets users pick: one
vendor only, an HA scheduler, cert-manager, custom resource names, a registry. What the
services read from them (device config, command lines) is read back with the services' own
loaders, so a flag or key they would refuse fails here."""

from __future__ import annotations

import base64
import ipaddress
import json
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from cryptography import x509
from hami_common.settings.device_config import NodeConfigFile, parse_device_config
from hami_e2e.charts.helm import Helm, find, one
from hami_extender.settings import ExtenderSettings
from hami_plugin_nvidia.config import PluginSettings
from hami_plugin_nvidia.mig import CHART_VALUE
from hami_webhook.settings import WebhookSettings

Json = dict[str, Any]
NVIDIA = ["nvidia.com/gpu", "nvidia.com/gpumem", "nvidia.com/gpumem-percentage",
          "nvidia.com/gpucores", "nvidia.com/priority"]  # fmt: skip
CAMBRICON = ["cambricon.com/vmlu", "cambricon.com/mlu.smlu.vmemory", "cambricon.com/mlu.smlu.vcore"]
MONITOR = ["ServiceAccount/hami-monitor", "ClusterRole/hami-monitor",
           "ClusterRoleBinding/hami-monitor", "Secret/hami-monitor-tls", "Service/hami-monitor",
           "DaemonSet/hami-monitor"]  # fmt: skip


@pytest.fixture(scope="module")
def default(helm: Helm, charts: dict[str, Path]) -> list[Json]:
    return helm.template(charts["hami"])


def names(docs: list[Json]) -> set[str]:
    return {f"{d['kind']}/{d['metadata']['name']}" for d in docs}


def pod_spec(docs: list[Json], kind: str, name: str) -> Json:
    return dict(one(docs, kind, name)["spec"]["template"]["spec"])


def container(docs: list[Json], kind: str, name: str, container_name: str) -> Json:
    spec = pod_spec(docs, kind, name)
    return next(c for c in spec["containers"] + spec.get("initContainers", [])
                if c["name"] == container_name)  # fmt: skip


def scheduler_config(docs: list[Json]) -> Json:
    return dict(yaml.safe_load(one(docs, "ConfigMap", "hami-scheduler")["data"]["config.yaml"]))


def managed(docs: list[Json]) -> list[str]:
    return [r["name"] for r in scheduler_config(docs)["extenders"][0]["managedResources"]]


def test_defaults_render_each_component(default: list[Json]) -> None:
    assert names(default) == {
        "ServiceAccount/hami-webhook", "ServiceAccount/hami-extender",
        "ServiceAccount/hami-scheduler", "ServiceAccount/hami-device-plugin",
        "Secret/hami-webhook-tls", "Secret/hami-extender-tls", "Secret/hami-scheduler-tls",
        "ConfigMap/hami-scheduler-device", "ConfigMap/hami-scheduler",
        "ConfigMap/hami-device-plugin",
        "ClusterRole/hami-webhook", "ClusterRole/hami-extender", "ClusterRole/hami-device-plugin",
        "ClusterRoleBinding/hami-webhook", "ClusterRoleBinding/hami-extender",
        "ClusterRoleBinding/hami-scheduler-kube-scheduler",
        "ClusterRoleBinding/hami-scheduler-volume-scheduler",
        "ClusterRoleBinding/hami-device-plugin",
        "Role/hami-extender", "Role/hami-scheduler",
        "RoleBinding/hami-extender", "RoleBinding/hami-scheduler",
        "Service/hami-webhook", "Service/hami-extender",
        "Deployment/hami-webhook", "Deployment/hami-extender", "Deployment/hami-scheduler",
        "DaemonSet/hami-device-plugin", "MutatingWebhookConfiguration/hami-webhook",
        *MONITOR, "ConfigMap/hami-dashboard",
    }  # fmt: skip
    for doc in default:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "hami"
        assert labels["app.kubernetes.io/part-of"] == "hami"


def test_images_and_tags(default: list[Json], helm: Helm, charts: dict[str, Path]) -> None:
    images = {c["name"]: c["image"] for kind in ("Deployment", "DaemonSet")
              for d in find(default, kind)
              for c in d["spec"]["template"]["spec"]["containers"]}  # fmt: skip
    assert images["webhook"] == "hami-rs/webhook:0.1.0"
    assert images["extender"] == "hami-rs/extender:0.1.0"
    assert images["device-plugin"] == "hami-rs/plugin-nvidia:0.1.0"
    assert images["monitor"] == "hami-rs/monitor:0.1.0"
    assert images["kube-scheduler"].startswith("registry.k8s.io/kube-scheduler:v1.")
    # k3s and other distributions suffix their version: the tag is the upstream one (HAMi #642)
    k3s = helm.template(charts["hami"], extra=["--kube-version", "v1.31.2+k3s1"])
    sched = container(k3s, "Deployment", "hami-scheduler", "kube-scheduler")
    assert sched["image"] == "registry.k8s.io/kube-scheduler:v1.31.2"
    # managed clusters' versions carry suffixes too, and pass the chart's kubeVersion (HAMi #744)
    eks = helm.template(charts["hami"], extra=["--kube-version", "v1.29.11-eks-2f28eda"])
    sched = container(eks, "Deployment", "hami-scheduler", "kube-scheduler")
    assert sched["image"] == "registry.k8s.io/kube-scheduler:v1.29.11"
    mirrored = helm.template(charts["hami"], {"global": {"imageRegistry": "registry.local:5000",
                                                          "imageTag": "9.9.9"}})  # fmt: skip
    for kind in ("Deployment", "DaemonSet"):
        for doc in find(mirrored, kind):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                assert c["image"].startswith("registry.local:5000/"), c["image"]
    assert container(mirrored, "Deployment", "hami-webhook", "webhook")["image"] == (
        "registry.local:5000/hami-rs/webhook:9.9.9")  # fmt: skip


def test_pods_are_locked_down(default: list[Json]) -> None:
    """Nothing privileged, no host namespaces; non-root but for the NVIDIA device plugin,
    which is root only for its host folders, with no capability (the vendor plugins, off by
    default: test_vendors.py)."""
    for kind in ("Deployment", "DaemonSet"):
        for doc in find(default, kind):
            spec = doc["spec"]["template"]["spec"]
            assert not spec.get("hostNetwork")
            assert not spec.get("hostPID")
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert doc["spec"]["template"]["metadata"]["labels"]["hami.io/webhook"] == "ignore"
            for c in spec["containers"] + spec.get("initContainers", []):
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False
                assert sc["readOnlyRootFilesystem"] is True
                assert sc["capabilities"] == {"drop": ["ALL"]}
                assert not sc.get("privileged")
                root = sc.get("runAsUser", spec["securityContext"].get("runAsUser"))
                plugin = doc["metadata"]["name"] == "hami-device-plugin"
                assert (root == 0) == plugin, f"{c['name']} runs as {root}"
    plugin = pod_spec(default, "DaemonSet", "hami-device-plugin")
    host = sorted(v["hostPath"]["path"] for v in plugin["volumes"] if "hostPath" in v)
    assert host == ["/tmp/vgpulock", "/usr/local/vgpu", "/var/lib/kubelet/device-plugins"]
    assert plugin["nodeSelector"] == {"gpu": "on"}
    # the install step runs in group 65532, which it gives the hook's containers/ and limits/
    # folders: the monitor's group (test_vendors.py)
    install = container(default, "DaemonSet", "hami-device-plugin", "install-hook")
    assert install["securityContext"]["runAsGroup"] == 65532
    assert "runAsGroup" not in container(default, "DaemonSet", "hami-device-plugin",
                                         "device-plugin")["securityContext"]  # fmt: skip


def test_webhook_configuration(default: list[Json]) -> None:
    hook = one(default, "MutatingWebhookConfiguration", "hami-webhook")["webhooks"][0]
    secret = one(default, "Secret", "hami-webhook-tls")
    assert hook["name"] == "vgpu.hami.io"
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    service = {"name": "hami-webhook", "namespace": "kube-system", "path": "/webhook", "port": 443}
    assert hook["clientConfig"]["service"] == service
    assert hook["failurePolicy"] == "Fail"
    assert [r["operations"] + r["resources"] for r in hook["rules"]] == [
        ["CREATE", "pods"], ["UPDATE", "pods/ephemeralcontainers"]]  # fmt: skip
    expression = hook["matchConditions"][0]["expression"]
    for name in NVIDIA + CAMBRICON:
        assert f'"{name}"' in expression
    assert {"key": "hami.io/webhook", "operator": "NotIn", "values": ["ignore"]} in (
        hook["namespaceSelector"]["matchExpressions"])  # fmt: skip
    cert = base64.b64decode(secret["data"]["tls.crt"])
    assert cert.startswith(b"-----BEGIN CERTIFICATE-----")
    assert secret["metadata"]["annotations"]["hami.io/tls-names"] == (
        "hami-webhook.kube-system.svc,hami-webhook.kube-system.svc.cluster.local")  # fmt: skip


def test_kube_scheduler_calls_the_extender_with_its_client_certificate(default: list[Json]) -> None:
    config = scheduler_config(default)
    # every feasible node reaches the extender: binpack must see the fullest one
    assert config["profiles"] == [{"schedulerName": "hami-scheduler",
                                   "percentageOfNodesToScore": 100}]  # fmt: skip
    assert config["leaderElection"]["resourceName"] == "hami-scheduler"
    ext = config["extenders"][0]
    assert ext["urlPrefix"] == "https://hami-extender.kube-system.svc:443"
    assert ext["tlsConfig"]["serverName"] == "hami-extender.kube-system.svc"
    assert (ext["filterVerb"], ext["bindVerb"], ext["nodeCacheCapable"]) == ("filter", "bind", True)
    assert managed(default) == NVIDIA + CAMBRICON
    assert all(r["ignoredByScheduler"] for r in ext["managedResources"])
    client = one(default, "Secret", "hami-scheduler-tls")["data"]
    server = one(default, "Secret", "hami-extender-tls")["data"]
    assert client["ca.crt"] == server["ca.crt"]  # the extender's --client-ca-file signed it
    args = container(default, "Deployment", "hami-extender", "extender")["args"]
    assert "--client-ca-file=/tls/ca.crt" in args


def test_services_accept_the_rendered_settings(default: list[Json]) -> None:
    """The chart's command lines and files, read by the services' own loaders."""
    webhook = container(default, "Deployment", "hami-webhook", "webhook")
    extender = container(default, "Deployment", "hami-extender", "extender")
    plugin = container(default, "DaemonSet", "hami-device-plugin", "device-plugin")
    assert webhook["command"] == ["python3", "-m", "hami_webhook"]
    w = WebhookSettings.load(webhook["args"], {}, prog="hami-webhook")
    assert (w.host, w.port, w.scheduler_name) == ("0.0.0.0", 8443, "hami-scheduler")
    e = ExtenderSettings.load(extender["args"], {}, prog="hami-extender")
    assert e.leader_elect
    assert (e.lease_namespace, e.lease_name) == ("kube-system", "hami-extender")
    p = PluginSettings.load(plugin["args"], {}, prog="hami-plugin-nvidia")
    assert str(p.hook_path) == "/usr/local"
    scheduler_side = one(default, "ConfigMap", "hami-scheduler-device")["data"]
    plugin_side = one(default, "ConfigMap", "hami-device-plugin")["data"]
    assert scheduler_side["device-config.yaml"] == plugin_side["device-config.yaml"]
    config = parse_device_config(yaml.safe_load(scheduler_side["device-config.yaml"]))
    assert config.nvidia.resource_count_name == "nvidia.com/gpu"
    assert config.nvidia.device_split_count == 10
    NodeConfigFile.model_validate(json.loads(plugin_side["config.json"]))


def test_extender_lock_events_and_idle_nodes_follow_the_values(
    default: list[Json], helm: Helm, charts: dict[str, Path]
) -> None:
    """scheduler.extender.nodeLock, bindingEvents, preferIdleNodes and burstWindow reach the
    extender's command line; their defaults are the extender's own, and the schema offers the
    lock modes the extender knows."""
    fields = ExtenderSettings.model_fields
    values = yaml.safe_load((charts["hami-scheduler"] / "values.yaml").read_text())["extender"]
    assert values["nodeLock"] == fields["node_lock"].default
    assert values["bindingEvents"] is fields["binding_events"].default
    assert values["preferIdleNodes"] is fields["prefer_idle_nodes"].default
    assert values["burstWindow"] == fields["burst_window"].default
    schema = json.loads((charts["hami-scheduler"] / "values.schema.json").read_text())
    lock = schema["properties"]["extender"]["properties"]["nodeLock"]
    assert tuple(lock["enum"]) == get_args(fields["node_lock"].annotation)
    args = container(default, "Deployment", "hami-extender", "extender")["args"]
    e = ExtenderSettings.load(args, {}, prog="hami-extender")
    assert (e.node_lock, e.binding_events, e.prefer_idle_nodes, e.burst_window) == (
        "memory", False, False, 4)  # fmt: skip
    set_ = {"nodeLock": "annotation", "bindingEvents": True, "preferIdleNodes": True,
            "burstWindow": 1}  # fmt: skip
    docs = helm.template(charts["hami"], {"scheduler": {"extender": set_}})
    args = container(docs, "Deployment", "hami-extender", "extender")["args"]
    e = ExtenderSettings.load(args, {}, prog="hami-extender")
    assert (e.node_lock, e.binding_events, e.prefer_idle_nodes, e.burst_window) == (
        "annotation", True, True, 1)  # fmt: skip


def test_one_vendor_only(helm: Helm, charts: dict[str, Path]) -> None:
    """A cluster with one kind of device installs the scheduler and that vendor's subchart."""
    scheduler = helm.template(charts["hami"], {"nvidia": {"enabled": False},
                                               "monitor": {"enabled": False}})  # fmt: skip
    assert not find(scheduler, "DaemonSet")
    assert len(find(scheduler, "Deployment")) == 3
    plugin_only = helm.template(charts["hami"], {"scheduler": {"enabled": False},
                                                 "monitor": {"enabled": False}})  # fmt: skip
    kinds = {"ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}
    assert {d["kind"] for d in plugin_only} == kinds
    # each subchart installs on its own, rendering what the umbrella renders for it
    alone = helm.template(charts["hami-nvidia"])
    assert names(alone) == names(plugin_only)
    sched_alone = helm.template(charts["hami-scheduler"])
    assert names(sched_alone) == names(scheduler)


def test_ha_scheduler(helm: Helm, charts: dict[str, Path]) -> None:
    docs = helm.template(charts["hami"], {"scheduler": {"replicas": 2}})
    for name in ("hami-webhook", "hami-extender", "hami-scheduler"):
        deployment = one(docs, "Deployment", name)
        assert deployment["spec"]["replicas"] == 2
        term = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        rule = term["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert rule["topologyKey"] == "kubernetes.io/hostname"
        assert rule["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
            name.removeprefix("hami-"))  # fmt: skip
    # the extender is ready only while it leads: a rolling update would wait forever
    assert one(docs, "Deployment", "hami-extender")["spec"]["strategy"] == {"type": "Recreate"}
    assert scheduler_config(docs)["leaderElection"]["leaderElect"] is True


def test_cert_manager(helm: Helm, charts: dict[str, Path]) -> None:
    docs = helm.template(charts["hami"], {"scheduler": {"certManager": {"enabled": True}}})
    # the scheduler's three are cert-manager's; the monitor's own is the chart's still
    assert [d["metadata"]["name"] for d in find(docs, "Secret")] == ["hami-monitor-tls"]
    certificates = {d["metadata"]["name"]: d["spec"] for d in find(docs, "Certificate")}
    assert certificates["hami-webhook"]["secretName"] == "hami-webhook-tls"
    assert certificates["hami-webhook"]["issuerRef"]["name"] == "hami-webhook-ca"
    assert certificates["hami-extender"]["issuerRef"]["name"] == "hami-extender-ca"
    assert certificates["hami-scheduler"]["issuerRef"]["name"] == "hami-extender-ca"
    assert "client auth" in certificates["hami-scheduler"]["usages"]
    assert certificates["hami-webhook-ca"]["isCA"] is True
    assert {d["metadata"]["name"] for d in find(docs, "Issuer")} == {
        "hami-selfsigned", "hami-webhook-ca", "hami-extender-ca"}  # fmt: skip
    mwc = one(docs, "MutatingWebhookConfiguration", "hami-webhook")
    assert mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        "kube-system/hami-webhook")  # fmt: skip
    assert "caBundle" not in mwc["webhooks"][0]["clientConfig"]
    annotations = one(docs, "Deployment", "hami-webhook")["spec"]["template"]["metadata"]
    assert "checksum/tls" not in annotations["annotations"]


def test_custom_resource_names(helm: Helm, charts: dict[str, Path]) -> None:
    custom = {"resourceName": "example.com/vgpu", "resourceMem": "example.com/vgpu-memory",
              "resourceMemPercentage": "", "resourceCores": "example.com/vgpu-cores",
              "resourcePriority": "example.com/vgpu-priority"}  # fmt: skip
    docs = helm.template(charts["hami"], {"global": {**custom, "deviceConfig": {
        "cambricon": {"resourceCountName": "example.com/mlu"}}}})  # fmt: skip
    assert managed(docs) == [
        "example.com/vgpu", "example.com/vgpu-memory", "example.com/vgpu-cores",
        "example.com/vgpu-priority", "example.com/mlu", *CAMBRICON[1:]]  # fmt: skip
    config = parse_device_config(
        yaml.safe_load(one(docs, "ConfigMap", "hami-device-plugin")["data"]["device-config.yaml"])
    )
    assert config.nvidia.resource_count_name == "example.com/vgpu"
    assert config.nvidia.resource_memory_percentage_name == ""
    assert config.cambricon.resource_count_name == "example.com/mlu"
    expression = one(docs, "MutatingWebhookConfiguration", "hami-webhook")["webhooks"][0][
        "matchConditions"][0]["expression"]  # fmt: skip
    assert '"example.com/vgpu"' in expression
    assert "nvidia.com" not in expression


def test_custom_url_goes_into_the_certificate(helm: Helm, charts: dict[str, Path]) -> None:
    url = {"enabled": True, "host": "10.0.0.5", "port": 31998}
    docs = helm.template(charts["hami"], {"scheduler": {"admissionWebhook": {"customURL": url}}})
    hook = one(docs, "MutatingWebhookConfiguration", "hami-webhook")["webhooks"][0]
    assert hook["clientConfig"]["url"] == "https://10.0.0.5:31998/webhook"
    assert "service" not in hook["clientConfig"]
    secret = one(docs, "Secret", "hami-webhook-tls")
    assert secret["metadata"]["annotations"]["hami.io/tls-names"].endswith(",10.0.0.5")
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    assert sans.get_values_for_type(x509.DNSName) == [
        "hami-webhook.kube-system.svc", "hami-webhook.kube-system.svc.cluster.local"]  # fmt: skip
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert.verify_directly_issued_by(ca)


def test_plugin_mig_strategy_and_mps_follow_the_values(
    default: list[Json], helm: Helm, charts: dict[str, Path]
) -> None:
    """nvidia.devicePlugin.migStrategy (HAMi's name) and mps reach the plugin's command line,
    read back with its settings; with mps the node's MPS folder is mounted at its own path and
    its shm folder at the plugin's /dev/shm (the one the plugin mounts into MPS containers), the
    plugin gets the compute libraries and SETUID/SETGID, and nothing of it by default."""
    fields = PluginSettings.model_fields
    values = yaml.safe_load((charts["hami-nvidia"] / "values.yaml").read_text())["devicePlugin"]
    assert values["migStrategy"] == fields["mig_strategy"].default
    schema = json.loads((charts["hami-nvidia"] / "values.schema.json").read_text())
    enum = schema["properties"]["devicePlugin"]["properties"]["migStrategy"]["enum"]
    assert sorted(enum) == sorted(get_args(fields["mig_strategy"].annotation))
    plugin = container(default, "DaemonSet", "hami-device-plugin", "device-plugin")
    p = PluginSettings.load(plugin["args"], {}, prog="hami-plugin-nvidia")
    assert p.mig_strategy == "none"
    assert {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"} in plugin["env"]
    assert "add" not in plugin["securityContext"]["capabilities"]
    assert "/dev/shm" not in {m["mountPath"] for m in plugin["volumeMounts"]}

    set_ = {"migStrategy": "single", "mps": {"enabled": True, "path": "/run/mps"}}
    docs = helm.template(charts["hami"], {"nvidia": {"devicePlugin": set_}})
    plugin = container(docs, "DaemonSet", "hami-device-plugin", "device-plugin")
    p = PluginSettings.load(plugin["args"], {}, prog="hami-plugin-nvidia")
    assert p.mig_strategy == "single"
    assert (str(p.mps_dir), str(p.mps_shm_dir), p.mps_control) == (
        "/run/mps", "/run/mps/shm", "nvidia-cuda-mps-control")  # fmt: skip
    volumes = {v["name"]: v for v in pod_spec(docs, "DaemonSet", "hami-device-plugin")["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]]["hostPath"]["path"]
              for m in plugin["volumeMounts"] if "hostPath" in volumes[m["name"]]}  # fmt: skip
    assert mounts["/run/mps"] == "/run/mps"
    assert mounts["/dev/shm"] == str(p.mps_shm_dir)
    assert {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"} in plugin["env"]
    assert plugin["securityContext"]["capabilities"] == {"drop": ["ALL"],
                                                          "add": ["SETUID", "SETGID"]}  # fmt: skip


def test_dynamic_mig_runs_the_plugin_privileged_only_when_asked(
    default: list[Json], helm: Helm, charts: dict[str, Path]
) -> None:
    """NVML makes MIG instances only with the MIG config capability, which the NVIDIA runtime
    gives a privileged container asking for it (values.yaml): devicePlugin.dynamicMig.enabled
    (the value the plugin's NO_PERMISSION error names) runs the plugin privileged with SYS_ADMIN
    and the runtime's MIG variables, beside MPS's capabilities; off by default. A privileged
    container never says allowPrivilegeEscalation: false (the API server refuses that)."""
    umbrella, key = CHART_VALUE.split(".", 1)
    values = yaml.safe_load((charts["hami-nvidia"] / "values.yaml").read_text())
    for part in key.split("."):
        values = values[part]
    assert (umbrella, values) == ("nvidia", False)
    plugin = container(default, "DaemonSet", "hami-device-plugin", "device-plugin")
    sc = plugin["securityContext"]
    assert (sc["privileged"], sc["allowPrivilegeEscalation"]) == (False, False)
    assert not {e["name"] for e in plugin["env"]} & {"NVIDIA_MIG_CONFIG_DEVICES",
                                                    "NVIDIA_MIG_MONITOR_DEVICES"}  # fmt: skip
    set_ = {"dynamicMig": {"enabled": True}, "mps": {"enabled": True}}
    docs = helm.template(charts["hami"], {"nvidia": {"devicePlugin": set_}})
    plugin = container(docs, "DaemonSet", "hami-device-plugin", "device-plugin")
    sc = plugin["securityContext"]
    assert (sc["privileged"], sc["allowPrivilegeEscalation"], sc["runAsUser"]) == (True, True, 0)
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["SETUID", "SETGID", "SYS_ADMIN"]}
    assert sc["readOnlyRootFilesystem"] is True
    for name in ("NVIDIA_MIG_CONFIG_DEVICES", "NVIDIA_MIG_MONITOR_DEVICES"):
        assert {"name": name, "value": "all"} in plugin["env"]
    install = container(docs, "DaemonSet", "hami-device-plugin", "install-hook")
    assert install["securityContext"]["privileged"] is False  # only the plugin itself
    mig_only = {"devicePlugin": {"dynamicMig": {"enabled": True}}}
    alone = helm.template(charts["hami-nvidia"], mig_only)
    sc = container(alone, "DaemonSet", "hami-device-plugin", "device-plugin")["securityContext"]
    assert (sc["privileged"], sc["capabilities"]["add"]) == (True, ["SYS_ADMIN"])
    for kind in ("Deployment", "DaemonSet"):
        for doc in find(docs, kind):
            spec = doc["spec"]["template"]["spec"]
            for c in spec["containers"] + spec.get("initContainers", []):
                sc = c["securityContext"]
                assert not (sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False)
