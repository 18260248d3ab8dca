import json
import os
import subprocess
from pathlib import Path

import pytest
from hami_e2e.build import BINARIES, BuildError, Layout, Versions, _ldflags, layout
from hami_e2e.paths import tools_dir


def test_pinned_versions_and_cache_key() -> None:
    v = Versions.load()
    assert v.k8s.startswith("v1.")
    assert int(v.k8s.split(".")[1]) >= 34
    assert v.etcd.startswith("v3.6.")
    assert v.key == f"k8s-{v.k8s}_etcd-{v.etcd}_kwok-{v.kwok}_helm-{v.helm}_r{v.rev}"


def test_go_modules_pin_the_same_versions() -> None:
    v = Versions.load()
    mods = {d: (tools_dir() / d / "go.mod").read_text() for d in ("k8s", "etcd", "kwok", "helm")}
    assert f"k8s.io/kubernetes {v.k8s}" in mods["k8s"]
    minor = "v0." + v.k8s.removeprefix("v1.")
    assert f"k8s.io/api => k8s.io/api {minor}" in mods["k8s"]
    assert f"go.etcd.io/etcd/server/v3 {v.etcd}" in mods["etcd"]
    assert f"sigs.k8s.io/kwok {v.kwok}" in mods["kwok"]
    assert f"helm.sh/helm/v3 {v.helm}" in mods["helm"]


def test_every_staging_module_is_replaced() -> None:
    gomod = (tools_dir() / "k8s" / "go.mod").read_text()
    replaced = {line.split()[1] for line in gomod.splitlines() if line.startswith("replace ")}
    for needed in ("k8s.io/api", "k8s.io/apiserver", "k8s.io/kube-scheduler", "k8s.io/streaming"):
        assert needed in replaced


def test_versions_file_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "versions.env"
    bad.write_text("K8S_VERSION=v1.36.5\n")
    with pytest.raises(BuildError, match="ETCD_VERSION is missing"):
        Versions.load(bad)
    bad.write_text("garbage\n")
    with pytest.raises(BuildError, match="not NAME=VALUE"):
        Versions.load(bad)


def test_layout_is_complete_only_with_every_binary_and_the_marker(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "k")
    assert not lay.is_complete()
    lay.bin.mkdir(parents=True)
    for name in BINARIES[:-1]:
        lay.binary(name).write_text("")
        lay.binary(name).chmod(0o755)
    lay.stages.write_text("x")
    lay.marker.write_text("{}")
    assert not lay.is_complete()
    lay.binary(BINARIES[-1]).write_text("")
    lay.binary(BINARIES[-1]).chmod(0o755)
    assert lay.is_complete()


def test_layout_follows_hami_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HAMI_CACHE", str(tmp_path))
    assert layout().root == tmp_path / "k8s" / Versions.load().key


def test_version_stamps() -> None:
    v = Versions.load()
    k8s = _ldflags(v, "k8s")
    assert f"-X k8s.io/component-base/version.gitVersion={v.k8s}" in k8s
    assert f"-X k8s.io/client-go/pkg/version.gitVersion={v.k8s}" in k8s
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=" in _ldflags(v, "helm")


@pytest.mark.e2e
def test_cached_binaries_report_the_pinned_versions() -> None:
    lay = layout()
    v = Versions.load()
    marker = json.loads(lay.marker.read_text())
    assert marker["kubernetes"] == v.k8s
    out = {
        name: subprocess.run(
            [str(lay.binary(name)), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout
        for name, args in {
            "kube-apiserver": ["--version"],
            "kube-scheduler": ["--version"],
            "kube-controller-manager": ["--version"],
            "etcd": ["--version"],
            "helm": ["version", "--short"],
            "kubectl": ["version", "--client"],
        }.items()
    }
    for name in ("kube-apiserver", "kube-scheduler", "kube-controller-manager"):
        assert out[name].strip() == f"Kubernetes {v.k8s}"
    assert f"etcd Version: {v.etcd.removeprefix('v')}" in out["etcd"]
    assert out["helm"].startswith(v.helm)
    assert f"Client Version: {v.k8s}" in out["kubectl"]
    assert all(os.access(lay.binary(b), os.X_OK) for b in BINARIES)
