"""Build the control-plane binaries from their upstream Go modules into a versioned cache.

`python -m hami_e2e.build` (or `./just build-cluster`) builds etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kubectl, kwok and helm from the modules pinned in
``e2e/tools/`` into ``$HAMI_CACHE/k8s/<key>/bin``, where the key names every version, and the
trace store Jaeger into ``$HAMI_CACHE/jaeger/<version>_r<rev>/bin`` (a folder of its own, so
a Jaeger bump never rebuilds Kubernetes). Each is a no-op when its folder is complete. Builds
are serialised by a lock file, written into a temporary folder and renamed into place, so an
interrupted build never leaves a half cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hami_e2e.gobuild import (
    BuildError,
    check_go,
    count_packages,
    go_env,
    lock,
    read_versions,
    run_logged,
    say,
)
from hami_e2e.paths import cache_root, tools_dir

__all__ = ["BINARIES", "BuildError", "JaegerLayout", "Layout", "Versions", "ensure_built"]

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
)
# Stages kwok v0.8 needs on its command line: it no longer embeds defaults. Node heartbeat
# uses Leases, which the harness enables with --node-lease-duration-seconds.
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


@dataclass(frozen=True)
class Versions:
    k8s: str
    etcd: str
    kwok: str
    helm: str
    rev: str

    @classmethod
    def load(cls, path: Path | None = None) -> Versions:
        path = path or tools_dir() / "versions.env"
        values = read_versions(path)
        try:
            return cls(
                k8s=values["K8S_VERSION"],
                etcd=values["ETCD_VERSION"],
                kwok=values["KWOK_VERSION"],
                helm=values["HELM_VERSION"],
                rev=values["BUILD_REV"],
            )
        except KeyError as exc:
            raise BuildError(f"{path}: {exc.args[0]} is missing") from None

    @property
    def key(self) -> str:
        return f"k8s-{self.k8s}_etcd-{self.etcd}_kwok-{self.kwok}_helm-{self.helm}_r{self.rev}"

    def as_dict(self) -> dict[str, str]:
        return {
            "kubernetes": self.k8s,
            "etcd": self.etcd,
            "kwok": self.kwok,
            "helm": self.helm,
            "build_rev": self.rev,
        }


@dataclass(frozen=True)
class Layout:
    """Where one set of versions lives in the cache."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def stages(self) -> Path:
        return self.root / "kwok-stages.yaml"

    @property
    def marker(self) -> Path:
        return self.root / "complete.json"

    def binary(self, name: str) -> Path:
        return self.bin / name

    def is_complete(self) -> bool:
        return (
            self.marker.is_file()
            and self.stages.is_file()
            and all(os.access(self.binary(b), os.X_OK) for b in BINARIES)
        )


def layout(versions: Versions | None = None, cache: Path | None = None) -> Layout:
    versions = versions or Versions.load()
    return Layout((cache or cache_root()) / "k8s" / versions.key)


JAEGER_PACKAGE = "github.com/jaegertracing/jaeger/cmd/jaeger"


@dataclass(frozen=True)
class JaegerLayout:
    """Where one Jaeger version lives in the cache: ``jaeger/<version>_r<rev>/bin/jaeger``."""

    root: Path
    version: str
    rev: str

    @property
    def key(self) -> str:
        return f"{self.version}_r{self.rev}"

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "jaeger"

    @property
    def marker(self) -> Path:
        return self.root / "complete.json"

    def is_complete(self) -> bool:
        return self.marker.is_file() and os.access(self.binary, os.X_OK)


def jaeger_layout(cache: Path | None = None, versions: Path | None = None) -> JaegerLayout:
    """The cache folder of the pinned Jaeger (``JAEGER_VERSION``, ``JAEGER_BUILD_REV``)."""
    path = versions or tools_dir() / "versions.env"
    values = read_versions(path)
    try:
        version, rev = values["JAEGER_VERSION"], values["JAEGER_BUILD_REV"]
    except KeyError as exc:
        raise BuildError(f"{path}: {exc.args[0]} is missing") from None
    return JaegerLayout((cache or cache_root()) / "jaeger" / f"{version}_r{rev}", version, rev)


def _ldflags(v: Versions, module: str) -> str:
    flags = ["-s", "-w"]
    if module == "k8s":
        major, minor = v.k8s.removeprefix("v").split(".")[:2]
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += [
                f"-X {pkg}.gitVersion={v.k8s}",
                f"-X {pkg}.gitMajor={major}",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
                f"-X {pkg}.gitCommit=module-{v.k8s}",
            ]
    elif module == "etcd":
        flags.append(f"-X go.etcd.io/etcd/api/v3/version.GitSHA=module-{v.etcd}")
    elif module == "helm":
        major, minor = v.k8s.removeprefix("v").split(".")[:2]
        flags.append(f"-X helm.sh/helm/v3/internal/version.version={v.helm}")
        flags.append("-X helm.sh/helm/v3/internal/version.gitTreeState=clean")
        for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
            flags += [f"-X {pkg}.k8sVersionMajor={major}", f"-X {pkg}.k8sVersionMinor={minor}"]
    return " ".join(flags)


def _targets(module: str) -> tuple[list[str], list[str]]:
    """(packages, extra go build args) of one tools module."""
    if module == "k8s":
        pkgs = [
            f"k8s.io/kubernetes/cmd/{c}"
            for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        ]
        return pkgs, ["-tags=selinux,notest,grpcnotrace"]
    if module == "etcd":
        return ["go.etcd.io/etcd/server/v3"], []
    if module == "kwok":
        return ["sigs.k8s.io/kwok/cmd/kwok"], []
    return ["helm.sh/helm/v3/cmd/helm"], []


def _module_dir(module: str, cwd: Path, env: dict[str, str], pkg: str) -> Path:
    out = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", pkg],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise BuildError(f"cannot locate module {pkg} from {module}: {out.stderr.strip()}")
    return Path(out.stdout.strip())


def _write_stages(versions: Versions, dest: Path) -> None:
    kwok_dir = _module_dir("kwok", tools_dir() / "kwok", go_env(), "sigs.k8s.io/kwok")
    docs = [(kwok_dir / rel).read_text().strip() for rel in KWOK_STAGES]
    header = f"# kwok {versions.kwok} stages: " + ", ".join(KWOK_STAGES)
    dest.write_text(header + "\n" + "\n---\n".join(docs) + "\n")


def ensure_built(cache: Path | None = None) -> tuple[Layout, float | None]:
    """Build the control-plane binaries and Jaeger unless the cache has them. Returns the
    control plane's layout and its cold build time in seconds, or None when it was cached."""
    built = ensure_control_plane(cache)
    ensure_jaeger(cache)
    return built


def ensure_control_plane(cache: Path | None = None) -> tuple[Layout, float | None]:
    """The Kubernetes binaries (see `ensure_built`)."""
    versions = Versions.load()
    lay = layout(versions, cache)
    if lay.is_complete():
        say(f"cache is warm: {lay.bin}")
        return lay, None
    with lock(lay.root.parent / f".{versions.key}.lock"):
        if lay.is_complete():  # another process finished it while we waited
            say(f"cache is warm: {lay.bin}")
            return lay, None
        return lay, _build(versions, lay)


def _build(versions: Versions, lay: Layout) -> float:
    go_version = check_go()
    start = time.monotonic()
    work = lay.root.with_name(lay.root.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    (work / "bin").mkdir(parents=True)
    log = work / "build.log"
    say(f"cold build of {versions.key} with {go_version} into {lay.root}")
    say(f"log: {log} (the final copy stays in the cache folder)")
    for module in ("etcd", "kwok", "helm", "k8s"):
        cwd = tools_dir() / module
        pkgs, extra = _targets(module)
        run_logged(["go", "mod", "download"], cwd, log, f"{module}: download modules")
        cmd = ["go", "build", "-v", *extra, "-ldflags", _ldflags(versions, module)]
        if len(pkgs) == 1:
            name = "etcd" if module == "etcd" else module
            cmd += ["-o", str(work / "bin" / name), *pkgs]
        else:
            cmd += ["-o", str(work / "bin") + "/", *pkgs]
        names = ", ".join("etcd" if module == "etcd" else p.rsplit("/", 1)[-1] for p in pkgs)
        total = count_packages(cwd, extra, pkgs)
        run_logged(cmd, cwd, log, f"{module}: compile {names}", total)
    _write_stages(versions, work / "kwok-stages.yaml")
    seconds = time.monotonic() - start
    (work / "complete.json").write_text(
        json.dumps({**versions.as_dict(), "go": go_version, "build_seconds": round(seconds)}) + "\n"
    )
    shutil.rmtree(lay.root, ignore_errors=True)
    work.rename(lay.root)
    say(f"built {len(BINARIES)} binaries in {seconds:.0f}s: {lay.bin}")
    return seconds


def ensure_jaeger(cache: Path | None = None) -> tuple[JaegerLayout, float | None]:
    """Build Jaeger unless the cache has it. Returns its layout and the cold build time in
    seconds, or None when the cache was warm."""
    lay = jaeger_layout(cache)
    if lay.is_complete():
        say(f"jaeger cache is warm: {lay.binary}")
        return lay, None
    with lock(lay.root.parent / f".{lay.key}.lock"):
        if lay.is_complete():
            say(f"jaeger cache is warm: {lay.binary}")
            return lay, None
        return lay, _build_jaeger(lay)


def _jaeger_ldflags(lay: JaegerLayout) -> str:
    pkg = "github.com/jaegertracing/jaeger/internal/version"
    return f"-s -w -X {pkg}.latestVersion={lay.version} -X {pkg}.commitSHA=module-{lay.version}"


def _build_jaeger(lay: JaegerLayout) -> float:
    go_version = check_go()
    start = time.monotonic()
    work = lay.root.with_name(lay.root.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    (work / "bin").mkdir(parents=True)
    log = work / "build.log"
    cwd = tools_dir() / "jaeger"
    say(f"cold build of jaeger {lay.key} with {go_version} into {lay.root}")
    say(f"log: {log} (the final copy stays in the cache folder)")
    run_logged(["go", "mod", "download"], cwd, log, "jaeger: download modules")
    cmd = ["go", "build", "-v", "-ldflags", _jaeger_ldflags(lay)]
    cmd += ["-o", str(work / "bin" / "jaeger"), JAEGER_PACKAGE]
    total = count_packages(cwd, [], [JAEGER_PACKAGE])
    run_logged(cmd, cwd, log, "jaeger: compile jaeger", total)
    seconds = time.monotonic() - start
    (work / "complete.json").write_text(
        json.dumps(
            {"jaeger": lay.version, "build_rev": lay.rev, "go": go_version,
             "build_seconds": round(seconds)}
        ) + "\n"
    )  # fmt: skip
    shutil.rmtree(lay.root, ignore_errors=True)
    work.rename(lay.root)
    say(f"built jaeger in {seconds:.0f}s: {lay.binary}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build-cluster", description=__doc__)
    parser.add_argument("--print-bin", action="store_true", help="print the bin folder and exit")
    args = parser.parse_args(argv)
    if args.print_bin:
        print(layout().bin)
        return 0
    try:
        lay, cold = ensure_control_plane()
        jaeger, jaeger_cold = ensure_jaeger()
    except BuildError as exc:
        print(f"build-cluster: {exc}", file=sys.stderr)
        return 1
    if cold is not None:
        print(f"cluster_build_cold_s={cold:.0f}")
    if jaeger_cold is not None:
        print(f"jaeger_build_cold_s={jaeger_cold:.0f}")
    print(f"binaries: {lay.bin}")
    print(f"jaeger: {jaeger.binary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
