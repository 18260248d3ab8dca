from __future__ import annotations

import json
from pathlib import Path

import pytest
from hami_common.dra.cdi import CdiEdits, CdiMount, qualified_name, remove_spec, write_spec


def test_spec_per_claim_written_and_removed(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path, "hami.io/gpu", "u1",
        {"u1-gpu-0": CdiEdits(env={"A": "1"})},
        CdiEdits(env={"B": "2"}, mounts=[CdiMount("/c", "/h", True)]),
    )  # fmt: skip
    assert path == tmp_path / "hami.io-gpu_u1.json"
    spec = json.loads(path.read_text())
    assert spec["kind"] == "hami.io/gpu"
    assert spec["devices"] == [{"name": "u1-gpu-0", "containerEdits": {"env": ["A=1"]}}]
    assert spec["containerEdits"]["mounts"] == [
        {"hostPath": "/h", "containerPath": "/c", "options": ["ro", "nosuid", "nodev", "bind"]}
    ]
    assert qualified_name("hami.io/gpu", "u1-gpu-0") == "hami.io/gpu=u1-gpu-0"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left
    remove_spec(tmp_path, "hami.io/gpu", "u1")
    remove_spec(tmp_path, "hami.io/gpu", "u1")
    assert not path.exists()


def test_a_device_without_edits_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="every CDI device needs at least one edit"):
        write_spec(tmp_path, "hami.io/gpu", "u1", {"d": CdiEdits()}, CdiEdits())
