"""The helm we build installs a chart into the cluster, and its kubeVersion check sees the real
server version (an unstamped apiserver would report v0.0.0-master and fail the constraint)."""

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from hami_common.k8s import CONFIG_MAPS
from hami_e2e.backend import Cluster
from hami_e2e.build import layout

pytestmark = pytest.mark.e2e


def write_chart(root: Path, kube_version: str) -> Path:
    chart = root / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: probe\nversion: 0.1.0\nkubeVersion: {kube_version!r}\n"
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
        "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )
    return chart


def helm(cluster: Cluster, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }
    return subprocess.run(
        [str(layout().binary("helm")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_helm_installs_a_chart_against_the_real_server_version(
    kube_cluster: Cluster, kube_namespace: str, tmp_path: Path
) -> None:
    chart = write_chart(tmp_path, ">=1.34.0-0")
    done = helm(
        kube_cluster,
        tmp_path,
        "install",
        "rel",
        str(chart),
        "--namespace",
        kube_namespace,
        "--set",
        "greeting=hi",
        "--wait",
        "--timeout",
        "30s",
    )
    assert done.returncode == 0, done.stderr

    async def read() -> dict[str, str]:
        async with kube_cluster.client() as kube:
            cm = await kube.get(CONFIG_MAPS, "rel-cm", namespace=kube_namespace)
            return dict(cm["data"])

    data = asyncio.run(read())
    assert data["greeting"] == "hi"
    assert data["kube"].startswith("v1.")
    listed = helm(kube_cluster, tmp_path, "list", "--namespace", kube_namespace, "--short")
    assert listed.stdout.split() == ["rel"]


def test_helm_refuses_a_chart_for_another_kubernetes(
    kube_cluster: Cluster, kube_namespace: str, tmp_path: Path
) -> None:
    chart = write_chart(tmp_path, "<1.20.0-0")
    done = helm(kube_cluster, tmp_path, "install", "old", str(chart), "--namespace", kube_namespace)
    assert done.returncode != 0
    assert "is incompatible with Kubernetes v1." in done.stderr
