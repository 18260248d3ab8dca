"""Every service starts through the same entry point (`hami_common.settings.main.run_service`):
each answers ``--version`` and ``--help`` the same way, as its own process."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest

SERVICES = [
    ("hami_webhook", "hami-webhook"),
    ("hami_extender", "hami-extender"),
    ("hami_plugin_nvidia", "hami-plugin-nvidia"),
]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAMI_")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**env, "COLUMNS": "400"},
    )  # fmt: skip


@pytest.mark.parametrize(("module", "prog"), SERVICES)
def test_version_and_help(module: str, prog: str) -> None:
    version = _run(module, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"{prog} {importlib.metadata.version(prog)}"
    usage = _run(module, "--help")
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.startswith(f"usage: {prog} ")
    assert "PydanticUndefined" not in usage.stdout
    assert "--config-file PATH" in usage.stdout
