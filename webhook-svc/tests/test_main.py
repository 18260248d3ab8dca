"""``python -m hami_webhook``: serves TLS, shuts down gracefully on SIGTERM, bad flags exit 2."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hami_webhook.__main__ import main
from hami_webhook.testing import TlsPair, container, pod, review


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_module_serves_admission_over_tls(tls_pair_factory: Callable[[str], TlsPair]) -> None:
    pair = tls_pair_factory("cli")
    port = _free_port()
    # fmt: off
    argv = [
        sys.executable, "-m", "hami_webhook",
        "--cert-file", str(pair.cert_file), "--key-file", str(pair.key_file),
        "--host", "127.0.0.1", "--port", str(port),
        "--no-quota-check", "--no-namespace-check",
    ]
    # fmt: on
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        verify = ssl.create_default_context(cafile=str(pair.ca_file))
        body = review(pod(container(limits={"nvidia.com/gpu": "1"})))
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.post(f"https://127.0.0.1:{port}/webhook", json=body, verify=verify)
                break
            except httpx.ConnectError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "the webhook did not start listening"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["response"]["allowed"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM)
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


def test_bad_settings_exit_2_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "99999"]) == 2
    assert "port (command line --port): Input should be less than or equal to 65535" in (
        capsys.readouterr().err
    )


def test_missing_certificate_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--cert-file", str(tmp_path / "a.crt"), "--key-file", str(tmp_path / "a.key")]
    assert main(argv) == 2
    assert "cannot load the TLS pair --cert-file" in capsys.readouterr().err


def test_invalid_device_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tls_pair_factory: Callable[[str], TlsPair]
) -> None:
    pair = tls_pair_factory("cfg")
    config = tmp_path / "device-config.yaml"
    config.write_text(json.dumps({"nvidia": {"gpuCorePolicy": "sometimes"}}))
    argv = [
        "--cert-file",
        str(pair.cert_file),
        "--key-file",
        str(pair.key_file),
        "--device-config-file",
        str(config),
    ]
    assert main(argv) == 2
    assert "nvidia.gpuCorePolicy" in capsys.readouterr().err


def _start_up_error(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """``python -m hami_webhook`` with ``argv``: its exit status and stderr."""
    done = subprocess.run([sys.executable, "-m", "hami_webhook", *argv], capture_output=True,
                          env=env, timeout=60, check=False)  # fmt: skip
    return done.returncode, done.stderr.decode()


def test_a_kubeconfig_that_does_not_load_is_one_line_naming_its_fix(
    tls_pair_factory: Callable[[str], TlsPair], tmp_path: Path
) -> None:
    pair = tls_pair_factory("kc")
    tls = ["--cert-file", str(pair.cert_file), "--key-file", str(pair.key_file), "--port", "0"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    given = tmp_path / "missing.kubeconfig"
    status, err = _start_up_error([*tls, "--kubeconfig", str(given)], env)
    assert status == 2
    assert err.count("\n") == 1
    assert err.startswith(f"hami-webhook: kubeconfig {given} does not exist; ")
    assert "fix the file that --kubeconfig names" in err
    assert "Traceback" not in err

    status, err = _start_up_error(tls, env)  # none given, no KUBECONFIG, not in a pod
    assert status == 2
    assert err.count("\n") == 1
    assert "set --kubeconfig (or KUBECONFIG)" in err
    assert "--no-quota-check --no-namespace-check" in err
