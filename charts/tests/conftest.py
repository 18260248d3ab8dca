"""Fixtures of the chart tests: the real helm binary (built by e2e/, ``./just build-cluster``)
with a private home, and each chart's folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_e2e.charts.helm import Helm, chart_paths


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def charts() -> dict[str, Path]:
    return chart_paths()
