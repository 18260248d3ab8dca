"""The volcano choice (``global.scheduler: volcano``): the NVIDIA plugin alone, in volcano mode,
and none of HAMi's scheduler; the values that do not go together are refused, naming the fix.
The rendered set is also a golden (``test_golden.py``, ``volcano``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hami_e2e.charts.helm import Helm, find
from hami_plugin_nvidia.config import PluginSettings

Json = dict[str, Any]
VOLCANO: Json = {"global": {"scheduler": "volcano"}, "scheduler": {"enabled": False}}


def plugin_settings(docs: list[Json]) -> PluginSettings:
    [plugin] = [
        c for ds in find(docs, "DaemonSet") for c in ds["spec"]["template"]["spec"]["containers"]
        if c["name"] == "device-plugin"
    ]  # fmt: skip
    return PluginSettings.load(plugin["args"], {}, prog="hami-plugin-nvidia")


def test_volcano_installs_the_plugin_in_volcano_mode_and_no_scheduler(
    helm: Helm, charts: dict[str, Path]
) -> None:
    values = {**VOLCANO, "nvidia": {"devicePlugin": {"gpuMemoryFactor": 16}}}
    docs = helm.template(charts["hami"], values)
    # the NVIDIA plugin and the node monitor (its Service and certificate Secret): no scheduler
    assert {d["kind"] for d in docs} == {
        "ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding", "DaemonSet",
        "Service", "Secret",
    }  # fmt: skip
    assert {d["metadata"]["name"] for d in find(docs, "DaemonSet")} == {
        "hami-device-plugin", "hami-monitor",
    }  # fmt: skip
    assert not find(docs, "Deployment")
    assert not find(docs, "MutatingWebhookConfiguration")
    settings = plugin_settings(docs)
    assert (settings.scheduler, settings.gpu_memory_factor) == ("volcano", 16)
    # the subchart alone renders the same plugin
    alone = helm.template(charts["hami-nvidia"], {"global": {"scheduler": "volcano"}})
    assert plugin_settings(alone).scheduler == "volcano"


def test_kube_scheduler_is_the_default_and_keeps_hamis_plugin(
    helm: Helm, charts: dict[str, Path]
) -> None:
    docs = helm.template(charts["hami"])
    assert plugin_settings(docs).scheduler == "kube-scheduler"
    assert len(find(docs, "Deployment")) == 3


@pytest.mark.parametrize(
    ("chart", "values", "expected"),
    [
        ("hami", {"global": {"scheduler": "volcano"}},
         ["global.scheduler is volcano", "scheduler.enabled=false"]),
        ("hami-scheduler", {"global": {"scheduler": "volcano"}}, ["the hami-scheduler chart"]),
        ("hami", {"global": {"scheduler": "slurm"}}, ["at '/global/scheduler'", "volcano"]),
        ("hami", {**VOLCANO, "nvidia": {"devicePlugin": {"gpuMemoryFactor": 0}}},
         ["at '/devicePlugin/gpuMemoryFactor'"]),
    ],
)  # fmt: skip
def test_what_does_not_go_together_is_refused(
    helm: Helm, charts: dict[str, Path], chart: str, values: Json, expected: list[str]
) -> None:
    message = helm.template_error(charts[chart], values)
    for text in expected:
        assert text in message, message
