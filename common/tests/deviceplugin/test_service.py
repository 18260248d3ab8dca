"""What every plugin's entry point shares: HAMi's variables stand for ours only where ours are
unset, the exits (2 for settings, 1 for a backend that cannot start), the fake backend's spec
required, the runtime options from the settings, and SIGTERM setting the stop event."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Literal

import pytest
from hami_common.deviceplugin.backend import BackendInitError
from hami_common.deviceplugin.service import (
    DevicePluginSettings,
    plugin_main,
    require_fake_spec,
    runtime_options,
    stop_on_signals,
)
from pydantic import Field


class Settings(DevicePluginSettings):
    """a plugin for the tests"""

    mode: Literal["a", "b"] = Field(default="a", description="a mode HAMi names MODE")
    fake_spec: Path | None = Field(default=None, description="the fake's spec")


def _main(argv: list[str], env: dict[str, str], seen: list[Settings]) -> int:
    async def serve(settings: Settings) -> None:
        seen.append(settings)
        if settings.mode == "b":
            raise BackendInitError("no driver here")
        require_fake_spec(settings.fake_spec)

    return plugin_main(
        Settings, "hami-plugin-test", serve, argv, env, hami_variables={"MODE": "mode"}
    )


def test_hami_variables_stand_in_only_for_ours_unset(tmp_path: Path) -> None:
    seen: list[Settings] = []
    spec = ["--fake-spec", str(tmp_path / "spec.json")]
    assert _main(spec, {"NODE_NAME": "theirs", "MODE": "a"}, seen) == 0
    assert (seen[-1].node_name, seen[-1].mode) == ("theirs", "a")
    env = {"NODE_NAME": "theirs", "HAMI_PLUGIN_NODE_NAME": "ours"}
    assert _main(spec, env, seen) == 0
    assert seen[-1].node_name == "ours"
    assert _main([*spec, "--node-name", "flag"], env, seen) == 0
    assert seen[-1].node_name == "flag"


def test_exits_2_for_settings_and_1_for_a_backend(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[Settings] = []
    assert _main([], {}, seen) == 2
    assert "--node-name is required (or env HAMI_PLUGIN_NODE_NAME" in capsys.readouterr().err
    assert _main(["--node-name", "n1"], {}, seen) == 2
    err = capsys.readouterr().err
    assert "hami-plugin-test: invalid setting fake_spec: required with --backend fake" in err
    assert _main(["--node-name", "n1"], {"MODE": "b"}, seen) == 1
    assert "hami-plugin-test: cannot start: no driver here" in capsys.readouterr().err


def test_runtime_options_carry_the_shared_settings() -> None:
    settings = Settings.load(
        ["--node-name", "n1", "--plugin-dir", "/dp", "--no-register-with-kubelet",
         "--socket-poll-interval", "0.5"], {},
    )  # fmt: skip
    options = runtime_options(settings, register_interval=7.0)
    assert (options.node, options.plugin_dir, options.register_with_kubelet) == (
        "n1", Path("/dp"), False)  # fmt: skip
    assert (options.socket_poll_interval, options.register_interval) == (0.5, 7.0)


def test_sigterm_sets_the_stop_event() -> None:
    async def go() -> None:
        stop = stop_on_signals()
        loop = asyncio.get_running_loop()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stop.wait(), 5)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    asyncio.run(go())
