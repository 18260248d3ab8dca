"""Certificates for the TLS tests, issued by the harness's real CA (`hami_e2e.pki`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hami_e2e.pki import ServingPki, serving_pki


@pytest.fixture
def pki(tmp_path: Path) -> Callable[[str], ServingPki]:
    """``pki(name)``: a new CA with a serving and a client certificate it signed."""
    return lambda name: serving_pki(tmp_path / "pki" / name, name, client_name=f"client-{name}")
