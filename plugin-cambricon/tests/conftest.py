"""The fake libcndev.so (``plugin-cambricon/fake/fake_cndev.c``), built once per session with
gcc from the documented CNDev signatures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_common.deviceplugin.testing import build_fake_library

FAKE = Path(__file__).parents[1] / "fake" / "fake_cndev.c"


@pytest.fixture(scope="session")
def fake_cndev(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_library(FAKE, tmp_path_factory.mktemp("fake-cndev") / "libcndev.so")
