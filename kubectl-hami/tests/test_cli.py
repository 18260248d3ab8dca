"""The entry point: errors are one line, kubectl's way; flags before or after the verb."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_kubectl.cli import main, parser


def test_flags_before_and_after_the_verb() -> None:
    args = parser({}).parse_args(["-n", "demo", "explain", "p", "-o", "yaml"])
    assert (args.namespace, args.output, args.pod) == ("demo", "yaml", "p")
    env = {"HAMI_PROMETHEUS_URL": "http://prom:9090", "HAMI_EXTENDER_CA": "/ca.crt"}
    args = parser(env).parse_args(["top", "pods", "-A"])
    assert (args.prometheus_url, args.extender_ca, args.all_namespaces) == (
        "http://prom:9090", Path("/ca.crt"), True)  # fmt: skip


def test_a_missing_kubeconfig_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--kubeconfig", str(tmp_path / "nope"), "top", "nodes"], {}) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: kubeconfig ")
    assert "does not exist" in err
    assert len(err.strip().splitlines()) == 1
