"""The umbrella chart's ``global.dra`` option: a DeviceClass selecting the DRA driver, the NVIDIA
plugin run as that driver with kubelet's DRA folders and the CDI folder mounted, the webhook's
``--dra``, and the RBAC each needs; none of it by default. The command lines are read back with
the services' own settings models, and names or paths they would refuse are refused at install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hami_e2e.charts.helm import Helm, one
from hami_plugin_nvidia.config import PluginSettings
from hami_webhook.settings import WebhookSettings

Json = dict[str, Any]
DRA = {"global": {"dra": {"enabled": True, "driverName": "gpu.example.io",
                          "deviceClassName": "fractional.example.io"}}}  # fmt: skip


@pytest.fixture(scope="module")
def dra(helm: Helm, charts: dict[str, Path]) -> list[Json]:
    return helm.template(charts["hami"], DRA)


@pytest.fixture(scope="module")
def default(helm: Helm, charts: dict[str, Path]) -> list[Json]:
    return helm.template(charts["hami"])


def _container(docs: list[Json], kind: str, name: str) -> Json:
    return dict(one(docs, kind, name)["spec"]["template"]["spec"]["containers"][0])


def _rules(docs: list[Json], name: str) -> list[Json]:
    return [r for r in one(docs, "ClusterRole", name)["rules"]
            if r["apiGroups"] == ["resource.k8s.io"]]  # fmt: skip


def test_device_class_only_with_the_dra_option(default: list[Json], dra: list[Json]) -> None:
    assert not [d for d in default if d["kind"] == "DeviceClass"]
    (dc,) = [d for d in dra if d["kind"] == "DeviceClass"]
    assert dc["apiVersion"] == "resource.k8s.io/v1"
    assert dc["metadata"]["name"] == "fractional.example.io"
    assert dc["spec"]["selectors"] == [{"cel": {"expression": 'device.driver == "gpu.example.io"'}}]


def test_the_plugin_runs_as_the_dra_driver(default: list[Json], dra: list[Json]) -> None:
    """--dra and the driver's folders reach the plugin, read by its own settings model; the
    folders are the node's, mounted at the same paths (kubelet dials the sockets at the host
    path, the runtime reads the CDI specs there); the device-plugin folder is not mounted."""
    plugin = _container(dra, "DaemonSet", "hami-device-plugin")
    p = PluginSettings.load(plugin["args"], {}, prog="hami-plugin-nvidia")
    assert (p.dra, p.dra_driver_name) == (True, "gpu.example.io")
    folders = {str(p.dra_plugins_dir), str(p.dra_registry_dir), str(p.cdi_dir)}
    assert folders == {"/var/lib/kubelet/plugins", "/var/lib/kubelet/plugins_registry",
                       "/var/run/cdi"}  # fmt: skip
    volumes = {v["name"]: v for v in one(dra, "DaemonSet", "hami-device-plugin")["spec"]
               ["template"]["spec"]["volumes"]}  # fmt: skip
    mounts = {m["mountPath"]: volumes[m["name"]]["hostPath"]["path"]
              for m in plugin["volumeMounts"] if "hostPath" in volumes[m["name"]]}  # fmt: skip
    assert folders <= {k for k, v in mounts.items() if k == v}
    assert "/var/lib/kubelet/device-plugins" not in mounts
    p = PluginSettings.load(_container(default, "DaemonSet", "hami-device-plugin")["args"], {},
                            prog="hami-plugin-nvidia")  # fmt: skip
    assert not p.dra


def test_the_webhook_converts_to_claims_of_the_class(default: list[Json], dra: list[Json]) -> None:
    w = WebhookSettings.load(_container(dra, "Deployment", "hami-webhook")["args"], {},
                             prog="hami-webhook")  # fmt: skip
    assert (w.dra, w.dra_device_class, w.dra_driver_name) == (
        True, "fractional.example.io", "gpu.example.io")  # fmt: skip
    w = WebhookSettings.load(_container(default, "Deployment", "hami-webhook")["args"], {},
                             prog="hami-webhook")  # fmt: skip
    assert not w.dra
    # it creates claim templates, none on a dry run
    (hook,) = one(dra, "MutatingWebhookConfiguration", "hami-webhook")["webhooks"]
    assert hook["sideEffects"] == "NoneOnDryRun"
    (hook,) = one(default, "MutatingWebhookConfiguration", "hami-webhook")["webhooks"]
    assert hook["sideEffects"] == "None"


def test_rbac_follows_the_option(default: list[Json], dra: list[Json]) -> None:
    """What the driver calls (slices.publish, driver.py), the webhook calls (dra.py) and the
    extender reads to explain a DRA pod (dra_explain.py), no more; nothing of resource.k8s.io
    without the option."""
    assert _rules(dra, "hami-device-plugin") == [
        {"apiGroups": ["resource.k8s.io"], "resources": ["resourceslices"],
         "verbs": ["get", "create", "update"]},
        {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaims"], "verbs": ["get"]},
    ]  # fmt: skip
    assert _rules(dra, "hami-webhook") == [
        {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaimtemplates"],
         "verbs": ["create"]}
    ]  # fmt: skip
    assert _rules(dra, "hami-extender") == [
        {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaims"], "verbs": ["get"]}
    ]  # fmt: skip
    assert not [r for name in ("hami-device-plugin", "hami-webhook", "hami-extender")
                for r in _rules(default, name)]  # fmt: skip


@pytest.mark.parametrize(("values", "named"), [
    ({"global": {"dra": {"enabled": True, "driverName": "GPU X"}}}, "driverName"),
    ({"nvidia": {"devicePlugin": {"cdiPath": "var/run/cdi"}}}, "cdiPath"),
])  # fmt: skip
def test_bad_values_are_refused(
    helm: Helm, charts: dict[str, Path], values: Json, named: str
) -> None:
    assert named in helm.template_error(charts["hami"], values)
