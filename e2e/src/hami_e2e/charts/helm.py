"""The real helm binary (built from its Go module into the cache, `hami_e2e.build`) on the
charts: lint, template, install, upgrade, uninstall, with its own cache and config folders so
no user's helm repositories or plugins take part."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hami_e2e.build import layout
from hami_e2e.charts.schemas import chart_root

Json = dict[str, Any]


class HelmError(RuntimeError):
    """helm exited with an error; the message is its stderr."""


def helm_binary() -> Path:
    path = layout().binary("helm")
    if not path.is_file():
        raise HelmError(f"helm is not built ({path}): run ./just build-cluster")
    return path


def chart_paths() -> dict[str, Path]:
    """Every chart: the umbrella ``hami`` and each subchart, by name."""
    root = chart_root()
    charts = {"hami": root}
    charts.update({p.name: p for p in sorted((root / "charts").iterdir()) if p.is_dir()})
    return charts


def documents(text: str) -> list[Json]:
    """The objects of a rendered manifest (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def find(docs: Iterable[Json], kind: str, name: str | None = None) -> list[Json]:
    return [d for d in docs if d.get("kind") == kind
            and (name is None or d["metadata"]["name"] == name)]  # fmt: skip


def one(docs: Iterable[Json], kind: str, name: str) -> Json:
    found = find(docs, kind, name)
    if len(found) != 1:
        names = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
        raise KeyError(f"{kind}/{name}: {len(found)} in the manifest, which holds {names}")
    return found[0]


@dataclass
class Helm:
    """helm with a private home (``HELM_*_HOME``) and, for the cluster commands, a kubeconfig."""

    home: Path
    kubeconfig: Path | None = None
    _values: int = field(default=0, init=False)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "HELM_CACHE_HOME": str(self.home / "cache"),
               "HELM_CONFIG_HOME": str(self.home / "config"),
               "HELM_DATA_HOME": str(self.home / "data")}  # fmt: skip
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(helm_binary()), *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout, check=False)  # fmt: skip

    def ok(self, *args: str, timeout: float = 180) -> str:
        done = self.run(*args, timeout=timeout)
        if done.returncode != 0:
            raise HelmError(f"helm {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done.stdout

    def values_file(self, values: Json) -> Path:
        """``values`` as a file for ``-f`` (keys with dots or slashes need no escaping)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._values += 1
        path = self.home / f"values-{self._values}.yaml"
        path.write_text(yaml.safe_dump(values, sort_keys=False))
        return path

    def value_args(self, values: Json | None) -> list[str]:
        return ["-f", str(self.values_file(values))] if values else []

    def template(
        self, chart: Path, values: Json | None = None, *, release: str = "hami",
        namespace: str = "kube-system", extra: Iterable[str] = (),
    ) -> list[Json]:  # fmt: skip
        out = self.ok("template", release, str(chart), "--namespace", namespace,
                      *self.value_args(values), *extra)  # fmt: skip
        return documents(out)

    def template_error(self, chart: Path, values: Json, extra: Iterable[str] = ()) -> str:
        """helm's stderr for values that must be refused (fails when helm accepts them)."""
        done = self.run("template", "hami", str(chart), *self.value_args(values), *extra)
        if done.returncode == 0:
            raise AssertionError(f"helm accepted values it must refuse: {values}")
        return done.stderr
