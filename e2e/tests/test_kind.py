"""The kind backend's own processes (kwok, Jaeger) behave as the local cluster's do: one that
dies is named with its log, and stop() stops them and deletes the kind cluster. Here `kind` is a
script that records its calls (kind itself needs Docker: see e2e/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_e2e.build import JaegerLayout, Layout
from hami_e2e.cluster import ClusterError
from hami_e2e.kind import KindCluster


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_a_process_that_dies_is_named_and_stop_deletes_the_kind_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "kind-calls"
    _script(tmp_path / "path" / "kind", f'echo "$@" >> {calls}')
    monkeypatch.setenv("PATH", f"{tmp_path / 'path'}:{Path('/usr/bin')}:{Path('/bin')}")
    binaries = Layout(tmp_path / "bin-cache")
    _script(binaries.binary("kwok"), "sleep 60")
    jaeger = JaegerLayout(tmp_path / "jaeger-cache", "v0", "1")
    _script(jaeger.binary, "echo 'jaeger: bad config' >&2\nexit 1")

    cluster = KindCluster(tmp_path / "run", binaries=binaries, jaeger_binary=jaeger)
    try:
        with pytest.raises(ClusterError, match=r"jaeger exited with code 1(.|\n)*bad config"):
            cluster.start()
        assert [p.name for p in cluster.processes] == ["kwok", "jaeger"]
        with pytest.raises(ClusterError, match="jaeger exited with code 1"):
            cluster.check()
        tails = cluster.log_tails()
        assert "----- jaeger (" in tails
        assert "bad config" in tails
        assert tails.endswith(f"(kind logs: kind export logs --name {cluster.name})")
    finally:
        cluster.stop()
    assert cluster.processes == []
    assert calls.read_text().splitlines()[-1] == f"delete cluster --name {cluster.name}"
