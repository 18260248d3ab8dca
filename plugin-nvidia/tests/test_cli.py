"""The entry point: `--help`, `--version`, clear exits for bad settings and a backend that cannot
start, and a clean stop on SIGTERM after serving (as its own process, as kubelet's DaemonSet runs
it: ``python -m hami_plugin_nvidia``)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hami_common.deviceplugin.testing import run_plugin, undocumented
from hami_plugin_nvidia.cli import main
from hami_plugin_nvidia.config import PluginSettings
from hami_plugin_nvidia.nvml import numa_of


def _plugin(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_plugin("hami_plugin_nvidia", *args, **env)


def test_help_names_the_program_and_documents_every_flag() -> None:
    done = _plugin("--help")
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())  # as one line: argparse wraps the help
    assert out.startswith("usage: hami-plugin-nvidia ")
    assert "PydanticUndefined" not in out
    assert "PosixPath" not in out
    assert undocumented(PluginSettings, out) == []
    assert re.search(r"--node-name VALUE [^-]*?; required\)", out)
    assert re.search(r"--plugin-dir PATH .*?; default: /var/lib/kubelet/device-plugins\)", out)
    assert "--backend {nvml,fake}" in out
    assert "--[no-]register-with-kubelet" in out or "--no-register-with-kubelet" in out
    # the fake backend's spec format is documented where the flag is
    assert re.search(r"--fake-spec PATH .*?\"uuid\": \"GPU-\.\.\.\"", out)
    assert "--version" in out


def test_version_prints_the_program_and_its_version() -> None:
    done = _plugin("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"hami-plugin-nvidia {importlib.metadata.version('hami-plugin-nvidia')}"
    )


def test_a_missing_node_name_names_the_flag_and_its_env() -> None:
    done = _plugin("--backend", "fake")
    assert done.returncode == 2
    assert "--node-name is required (or env HAMI_PLUGIN_NODE_NAME" in done.stderr
    assert "Traceback" not in done.stderr
    # HAMi's variable counts: then the next problem is reported, naming its flag
    done = _plugin("--backend", "fake", NODE_NAME="n1")
    assert done.returncode == 2
    assert "fake_spec: required with --backend fake" in done.stderr


def test_an_unsupported_otel_setting_names_the_variable() -> None:
    done = _plugin("--node-name", "n1", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert done.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='grpc' is not supported; use http/protobuf" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_settings_exit_2_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--node-name", "n1", "--split"], {}) == 2
    assert main(["--node-name", "n1", "--backend", "fake"], {}) == 2
    assert "fake_spec: required with --backend fake" in capsys.readouterr().err
    assert main(["--node-name", "n1", "--gpu-memory-factor", "16"], {}) == 2
    assert "applies with --scheduler volcano only" in capsys.readouterr().err
    assert main(["--node-name", "n1", "--scheduler", "slurm"], {}) == 2
    assert "scheduler (command line --scheduler)" in capsys.readouterr().err


def test_volcano_mode_refuses_more_memory_ids_than_kubelet_receives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    gpus = [{"uuid": f"GPU-{i}", "model": "A100", "memory_mib": 81920} for i in range(8)]
    spec.write_text(json.dumps(gpus))
    argv = ["--node-name", "n1", "--backend", "fake", "--fake-spec", str(spec)]
    assert main([*argv, "--scheduler", "volcano"], {}) == 2
    assert "set --gpu-memory-factor 11 or more" in capsys.readouterr().err


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


@pytest.mark.parametrize(
    ("scheduler", "sockets"),
    [
        ("kube-scheduler", ["nvidia-gpu.sock"]),
        (
            "volcano",
            ["volcano-vgpu-number.sock", "volcano-vgpu-memory.sock", "volcano-vgpu-cores.sock"],
        ),
    ],
)
def test_serves_then_stops_cleanly_on_sigterm(
    tmp_path: Path, scheduler: str, sockets: list[str]
) -> None:
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
            "--kubeconfig", str(kubeconfig), "--scheduler", scheduler,
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        paths = [root / "dp" / name for name in sockets]
        deadline = time.monotonic() + 30
        while not all(p.exists() for p in paths):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the plugin never served its sockets"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert f"scheduler {scheduler}" in err
        assert "stopped" in err
        assert not any(p.exists() for p in paths)
        assert sorted(os.listdir(root / "dp")) == []
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
