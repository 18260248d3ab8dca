"""``python -m hami_extender``, as a process: every start-up error (a bad setting, a kubeconfig
that does not load, TLS files that do not, an address the listening rule refuses) is one line
on stderr that names what to fix, and exit status 2; never a traceback from uvicorn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hami_e2e.pki import serving_pki
from hami_extender.__main__ import main


def test_bad_settings_exit_2_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lock-wait-seconds", "99"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hami-extender: invalid setting lock_wait_seconds (command line ")
    assert err.count("\n") == 1


def start(argv: list[str], home: Path, **env: str) -> tuple[int, str]:
    """Run the module until it exits (a start-up error exits at once): status, stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "hami_extender", "--port", "0", *argv], capture_output=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), **env}, timeout=60, check=False,
    )  # fmt: skip
    err = done.stderr.decode()
    assert "Traceback" not in err, err
    assert err.count("\n") == 1, err
    return done.returncode, err.strip()


def test_a_bad_setting(tmp_path: Path) -> None:
    status, err = start(["--reservation-ttl-seconds", "-1"], tmp_path)
    assert status == 2
    assert err == (
        "hami-extender: invalid setting reservation_ttl_seconds (command line "
        "--reservation-ttl-seconds): Input should be greater than 0; got '-1'"
    )


def test_a_missing_kubeconfig_named_by_the_flag(tmp_path: Path) -> None:
    missing = tmp_path / "admin.kubeconfig"
    status, err = start(["--kubeconfig", str(missing)], tmp_path)
    assert status == 2
    assert err.startswith(f"hami-extender: kubeconfig {missing} does not exist; ")
    assert err.endswith("; fix the file that --kubeconfig names, or name another")


def test_no_kubeconfig_at_all(tmp_path: Path) -> None:
    status, err = start([], tmp_path)  # no flag, no KUBECONFIG, no ~/.kube/config, no pod
    assert status == 2
    assert err.startswith(f"hami-extender: kubeconfig {tmp_path}/.kube/config does not exist; ")
    assert err.endswith("; set --kubeconfig (or KUBECONFIG), or run in a pod with a service "
                        "account")  # fmt: skip


def test_a_broken_kubeconfig_named_by_the_environment(tmp_path: Path) -> None:
    broken = tmp_path / "kc.yaml"
    broken.write_text("clusters: [")
    status, err = start([], tmp_path, KUBECONFIG=str(broken))
    assert status == 2
    assert err.startswith(f"hami-extender: kubeconfig {broken} is not valid YAML")
    assert err.endswith("; fix the file that KUBECONFIG names, or set --kubeconfig")


def test_tls_files_that_do_not_load(tmp_path: Path) -> None:
    pki = serving_pki(tmp_path, "x")
    status, err = start(["--cert-file", str(pki.server.cert), "--key-file",
                         str(pki.client.key)], tmp_path)  # fmt: skip
    assert status == 2
    assert err.startswith(f"hami-extender: cannot load the TLS pair --cert-file {pki.server.cert}")


def test_every_interface_without_tls(tmp_path: Path) -> None:
    status, err = start(["--host", "0.0.0.0"], tmp_path)
    assert status == 2
    assert err == (
        "hami-extender: invalid setting host (--host 0.0.0.0): listening beyond loopback "
        "exposes /filter and /bind (which reserve devices and bind any pod) to the network, so "
        "it needs --cert-file, --key-file, --client-ca-file; set them, or listen on 127.0.0.1"
    )


def test_help_says_what_listening_beyond_loopback_exposes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = "".join(capsys.readouterr().out.split())  # whatever argparse's wrapping
    assert "Anyotheraddress(0.0.0.0:everyinterface)exposes/filterand/bind" in text
    assert "soitneeds--cert-file,--key-fileand--client-ca-file" in text
