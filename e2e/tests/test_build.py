import json
import os
import subprocess
from pathlib import Path

import pytest
from hami_e2e.build import (
    BINARIES,
    BuildError,
    JaegerLayout,
    Layout,
    Versions,
    _jaeger_ldflags,
    _ldflags,
    jaeger_layout,
    layout,
)
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


def test_jaeger_has_a_cache_folder_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HAMI_CACHE", str(tmp_path))
    jaeger = jaeger_layout()
    assert jaeger.root == tmp_path / "jaeger" / f"{jaeger.version}_r{jaeger.rev}"
    assert jaeger.binary == jaeger.root / "bin" / "jaeger"
    gomod = (tools_dir() / "jaeger" / "go.mod").read_text()
    assert f"github.com/jaegertracing/jaeger {jaeger.version}" in gomod
    assert f"latestVersion={jaeger.version}" in _jaeger_ldflags(jaeger)


def test_a_jaeger_bump_keeps_the_kubernetes_cache_key(tmp_path: Path) -> None:
    pinned = (tools_dir() / "versions.env").read_text()
    bumped = tmp_path / "versions.env"
    bumped.write_text(pinned.replace("JAEGER_VERSION=", "JAEGER_VERSION=v9.9.9-was-"))
    assert Versions.load(bumped).key == Versions.load().key
    assert jaeger_layout(tmp_path, bumped).version.startswith("v9.9.9")
    bumped.write_text("JAEGER_VERSION=v1.75.0\n")
    with pytest.raises(BuildError, match="JAEGER_BUILD_REV is missing"):
        jaeger_layout(tmp_path, bumped)


def test_jaeger_layout_is_complete_only_with_the_binary_and_the_marker(tmp_path: Path) -> None:
    jaeger = JaegerLayout(tmp_path / "j", "v1", "1")
    assert not jaeger.is_complete()
    jaeger.binary.parent.mkdir(parents=True)
    jaeger.binary.write_text("")
    jaeger.binary.chmod(0o755)
    assert not jaeger.is_complete()
    jaeger.marker.write_text("{}")
    assert jaeger.is_complete()


@pytest.mark.e2e
def test_cached_jaeger_reports_the_pinned_version() -> None:
    jaeger = jaeger_layout()
    marker = json.loads(jaeger.marker.read_text())
    assert marker["jaeger"] == jaeger.version
    out = subprocess.run(
        [str(jaeger.binary), "version"], capture_output=True, text=True, check=True, timeout=30
    )
    assert jaeger.version in out.stdout + out.stderr


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
