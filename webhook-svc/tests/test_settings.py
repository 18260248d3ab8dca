"""WebhookSettings: HAMi-compatible defaults, env names, and the device config it points at."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_common.settings import SettingsError
from hami_webhook.settings import WebhookSettings


def test_defaults() -> None:
    s = WebhookSettings.load([], {})
    assert (s.port, s.scheduler_name, s.force_overwrite_default_scheduler) == (
        8443,
        "hami-scheduler",
        True,
    )
    assert (s.quota_check, s.namespace_check, s.uses_kube_api) == (True, True, True)
    assert s.device_config().nvidia.default_gpu_num == 1


def test_env_and_cli() -> None:
    env = {"HAMI_WEBHOOK_SCHEDULER_NAME": "", "HAMI_WEBHOOK_QUOTA_CHECK": "false"}
    s = WebhookSettings.load(["--no-namespace-check"], env)
    assert (s.scheduler_name, s.quota_check, s.namespace_check, s.uses_kube_api) == (
        "",
        False,
        False,
        False,
    )


def test_device_config_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "device-config.yaml"
    path.write_text("nvidia:\n  defaultGPUNum: 2\n")
    assert (
        WebhookSettings.load(["--device-config-file", str(path)])
        .device_config()
        .nvidia.default_gpu_num
        == 2
    )


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["--log-level", "loud"], "log_level"),
        (["--cert-reload-seconds", "0"], "cert_reload_seconds"),
        (["--max-request-bytes", "10"], "max_request_bytes"),
    ],
)
def test_out_of_range_values_name_the_key(argv: list[str], key: str) -> None:
    with pytest.raises(SettingsError, match=rf"{key} \(command line"):
        WebhookSettings.load(argv)
