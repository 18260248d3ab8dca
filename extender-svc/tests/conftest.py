"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
from hami_extender.testing import FakeApi


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()
