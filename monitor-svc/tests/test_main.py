"""The entry point: settings errors (exit 2), a driver that cannot start (exit 1), each one line
naming what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hami_monitor.__main__ import main

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_node_name_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], environ={}) == 2
    assert "node_name" in capsys.readouterr().err


def test_nodes_name_from_hamis_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--vendor", "amd"], environ={"NODE_NAME": "n1"}) == 2
    err = capsys.readouterr().err
    assert "vendor" in err
    assert "node_name" not in err


def test_listening_beyond_loopback_needs_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "k").write_text(KUBECONFIG)
    argv = ["--node-name", "n", "--host", "0.0.0.0", "--kubeconfig", str(tmp_path / "k")]
    assert main(argv, environ={}) == 2
    assert "--cert-file, --key-file" in capsys.readouterr().err


def test_no_nvml_is_exit_1_with_the_cause(tmp_path: Path) -> None:
    (tmp_path / "k").write_text(KUBECONFIG)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = subprocess.run(
        [sys.executable, "-m", "hami_monitor", "--node-name", "n", "--port", "0",
         "--kubeconfig", str(tmp_path / "k")],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("hami-monitor: cannot start: NVML could not be initialised")
    assert len(out.stderr.strip().splitlines()) == 1
