"""A chart's pod run as local processes listens where nothing else does: every listening port
on the command line is mapped to a free one, whatever the chart fixed (a second extender on
this machine, such as a benchmark's, holds HAMi's metrics port 9395)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from hami_e2e.charts.localpod import LocalPod


def deployment(args: list[str]) -> dict[str, Any]:
    container = {"name": "extender", "command": ["python3", "-m", "hami_extender"], "args": args}
    return {"kind": "Deployment", "metadata": {"name": "hami-extender"},
            "spec": {"template": {"spec": {"containers": [container]}}}}  # fmt: skip


def test_listening_ports_are_mapped_to_free_ones(tmp_path: Path) -> None:
    with socket.socket() as held:  # what another process on this machine holds
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        args = ["--host=0.0.0.0", "--port=8443", f"--metrics-port={taken}", "--log-level=info"]
        pod = LocalPod([deployment(args)], "Deployment", "hami-extender", tmp_path)
        argv = pod.argv("extender", port=40123)
    flags = dict(word.split("=", 1) for word in argv[3:])
    assert flags["--host"] == "127.0.0.1"
    assert flags["--port"] == "40123"
    assert flags["--metrics-port"] != str(taken)
    assert int(flags["--metrics-port"]) > 0
    assert flags["--log-level"] == "info"
