"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
from hami_common.k8s.testing import FakeApiServer


@pytest.fixture
def api() -> FakeApiServer:
    return FakeApiServer()
