"""The entry point: clear exits for bad settings and a backend that cannot start, and a clean
stop on SIGTERM after serving (as its own process)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hami_plugin_nvidia.cli import main
from hami_plugin_nvidia.nvml import numa_of


def test_bad_settings_exit_2_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--node-name", "n1", "--split"], {}) == 2
    assert main(["--node-name", "n1", "--backend", "fake"], {}) == 2
    assert "fake_spec: required with --backend fake" in capsys.readouterr().err


def test_backend_init_failure_exits_1_with_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"devices": [], "init_error": "NVML: driver not loaded"}))
    argv = ["--node-name", "n1", "--backend", "fake", "--fake-spec", str(spec)]
    assert main(argv, {}) == 1
    assert "cannot start: NVML: driver not loaded" in capsys.readouterr().err


def test_node_config_error_names_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"nodeconfig": [{"name": "n1", "devicesplitcount": "many"}]}))
    assert main(["--node-name", "n1", "--node-config-file", str(cfg)], {}) == 2
    err = capsys.readouterr().err
    assert "nodeconfig.0.devicesplitcount" in err
    assert str(cfg) in err


def test_serves_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="cli-", dir="/tmp"))  # short socket path
    try:
        spec = root / "spec.json"
        spec.write_text(
            json.dumps([{"uuid": "GPU-1", "index": 0, "model": "T4", "memory_mib": 15360}])
        )
        kubeconfig = (
            tmp_path / "kubeconfig"
        )  # an API server that is not there: registration retries
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
            "users: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
            "current-context: x\n"
        )
        argv = [
            sys.executable, "-m", "hami_plugin_nvidia", "--node-name", "n1", "--backend", "fake",
            "--fake-spec", str(spec), "--plugin-dir", str(root / "dp"),
            "--no-register-with-kubelet", "--hook-path", str(root / "hook"),
            "--kubeconfig", str(kubeconfig),
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        socket = root / "dp" / "nvidia-gpu.sock"
        deadline = time.monotonic() + 30
        while not socket.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the plugin never served its socket"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in err
        assert not socket.exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_numa_from_sysfs(tmp_path: Path) -> None:
    (tmp_path / "0000:3b:00.0").mkdir()
    (tmp_path / "0000:3b:00.0" / "numa_node").write_text("1\n")
    (tmp_path / "0000:af:00.0").mkdir()
    (tmp_path / "0000:af:00.0" / "numa_node").write_text("-1\n")
    assert numa_of("00000000:3B:00.0", tmp_path) == 1
    assert numa_of("00000000:AF:00.0", tmp_path) == 0
    assert numa_of("00000000:01:00.0", tmp_path) == 0
