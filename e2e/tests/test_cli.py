"""`cluster-up` / `cluster-down` as a person runs them: what up prints works, down stops it all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hami_e2e.cli", *args],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def _gone(pgid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.e2e
def test_cluster_up_prints_where_the_traces_are_and_down_stops_everything(tmp_path: Path) -> None:
    workdir = tmp_path / "cluster"
    groups: dict[str, int] = {}
    try:
        up = _cli("up", "--workdir", str(workdir))
        assert up.returncode == 0, up.stderr
        out = up.stdout
        assert f"export KUBECONFIG={workdir / 'admin.kubeconfig'}" in out
        ui = re.search(r"traces \(Jaeger\): (http://127\.0\.0\.1:\d+)", out)
        otlp = re.search(r"export OTEL_EXPORTER_OTLP_ENDPOINT=(http://127\.0\.0\.1:\d+)", out)
        assert ui is not None, out
        assert otlp is not None, out
        assert httpx.get(f"{ui[1]}/api/v3/services", timeout=5).status_code == 200
        export = httpx.post(
            f"{otlp[1]}/v1/traces", content=b"",
            headers={"Content-Type": "application/x-protobuf"}, timeout=5,
        )  # fmt: skip
        assert export.status_code == 200
        recorded = json.loads((workdir / "state.json").read_text())["processes"]
        groups = {name: int(identity["pid"]) for name, identity in recorded.items()}
        assert "jaeger" in groups
    finally:
        down = _cli("down", "--workdir", str(workdir))
        assert down.returncode == 0, down.stderr
    assert all(_gone(pgid) for pgid in groups.values()), groups
