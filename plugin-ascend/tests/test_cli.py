"""The entry point as its own process (``python -m hami_plugin_ascend``, as the DaemonSet runs
it): ``--help``, ``--version``, and one clear line with exit 2 or 1 for each way it cannot
start."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from pathlib import Path

from hami_common.deviceplugin.testing import run_plugin, undocumented
from hami_plugin_ascend.config import PluginSettings


def _plugin(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_plugin("hami_plugin_ascend", *args, fake_env="FAKE_DCMI", **env)


def test_help_and_version() -> None:
    done = _plugin("--help")
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert out.startswith("usage: hami-plugin-ascend ")
    assert undocumented(PluginSettings, out) == []
    assert "--backend {dcmi,fake}" in out
    done = _plugin("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == (
        f"hami-plugin-ascend {importlib.metadata.version('hami-plugin-ascend')}"
    )


def test_no_dcmi_is_exit_1_naming_the_flag(device_config: Path, tmp_path: Path) -> None:
    done = _plugin("--node-name", "n1", "--device-config-file", str(device_config),
                   "--dcmi-library", str(tmp_path / "none.so"))  # fmt: skip
    assert done.returncode == 1
    assert "cannot start: cannot load the DCMI library" in done.stderr
    assert "--dcmi-library" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_chip_without_a_vnpus_entry_is_exit_2(device_config: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"uuid": "vdie-0", "model": "910B2", "memory_mib": 65536}]))
    done = _plugin("--node-name", "n1", "--device-config-file", str(device_config),
                   "--backend", "fake", "--fake-spec", str(spec))  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "vnpus has no chip with chipName '910B2'" in done.stderr
    assert "its chips: 910B3, 310P3, Ascend910" in done.stderr


def test_the_real_backend_over_the_fake_library_reaches_the_kubeconfig(
    device_config: Path, fake_dcmi: Path, tmp_path: Path
) -> None:
    # DCMI found the NPUs and the chip's entry; what stops it is the missing API server
    done = _plugin("--node-name", "n1", "--device-config-file", str(device_config),
                   "--dcmi-library", str(fake_dcmi), "--kubeconfig", str(tmp_path / "none"),
                   FAKE_DCMI_CARDS="2")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "kubeconfig" in done.stderr
    assert "Traceback" not in done.stderr
