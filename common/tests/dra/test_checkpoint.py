from __future__ import annotations

from pathlib import Path

import pytest
from hami_common.dra.checkpoint import Checkpoint, CheckpointError


def test_survives_a_restart_and_refuses_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "d" / "checkpoint.json"
    first = Checkpoint(path)
    first.put("u1", {"shares": [1]})
    first.put("u2", {"shares": [2]})
    assert first.remove("u2") is True
    assert first.remove("u2") is False
    assert Checkpoint(path).claims == {"u1": {"shares": [1]}}
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"checkpoint .*checkpoint.json: not JSON"):
        Checkpoint(path)
