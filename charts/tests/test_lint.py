"""helm lint --strict on every chart, alone and through the umbrella."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_e2e.charts.helm import Helm, chart_paths


@pytest.mark.parametrize("name", sorted(chart_paths()))
def test_helm_lint_strict(helm: Helm, charts: dict[str, Path], name: str) -> None:
    done = helm.run("lint", "--strict", str(charts[name]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout


def test_every_subchart_is_a_dependency_of_the_umbrella(charts: dict[str, Path]) -> None:
    """A subchart folder the umbrella does not list would never be installed by it."""
    import yaml  # noqa: PLC0415

    listed = yaml.safe_load((charts["hami"] / "Chart.yaml").read_text())["dependencies"]
    assert sorted(d["name"] for d in listed) == sorted(n for n in charts if n != "hami")
    for dep in listed:
        assert dep["condition"] == f"{dep['alias']}.enabled"
        sub = yaml.safe_load((charts[dep["name"]] / "Chart.yaml").read_text())
        assert sub["version"] == dep["version"]
