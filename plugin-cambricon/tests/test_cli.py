"""The entry point as its own process (``python -m hami_plugin_cambricon``): ``--help``,
``--version``, and one clear line with exit 2 or 1 for each way it cannot start."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

from hami_common.deviceplugin.testing import run_plugin, undocumented
from hami_plugin_cambricon.config import PluginSettings


def _plugin(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_plugin("hami_plugin_cambricon", *args, fake_env="FAKE_CNDEV", **env)


def test_help_and_version() -> None:
    done = _plugin("--help")
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert out.startswith("usage: hami-plugin-cambricon ")
    assert undocumented(PluginSettings, out) == []
    assert "--backend {cndev,fake}" in out
    done = _plugin("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == (
        f"hami-plugin-cambricon {importlib.metadata.version('hami-plugin-cambricon')}"
    )


def test_no_cndev_is_exit_1_naming_the_flag(tmp_path: Path) -> None:
    done = _plugin("--node-name", "n1", "--cndev-library", str(tmp_path / "none.so"))
    assert done.returncode == 1
    assert "cannot start: cannot load the CNDev library" in done.stderr
    assert "--cndev-library" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_real_backend_over_the_fake_library_reaches_the_kubeconfig(
    fake_cndev: Path, tmp_path: Path
) -> None:
    done = _plugin("--node-name", "n1", "--cndev-library", str(fake_cndev),
                   "--kubeconfig", str(tmp_path / "none"))  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "kubeconfig" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_device_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "device-config.yaml"
    config.write_text("cambricon:\n  resourceCountName: 'not a name!'\n")
    done = _plugin("--node-name", "n1", "--device-config-file", str(config), "--backend", "fake",
                   "--fake-spec", str(tmp_path / "spec.json"))  # fmt: skip
    assert done.returncode == 2
    assert "cambricon.resourceCountName" in done.stderr
