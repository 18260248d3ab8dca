"""The fake libdcmi.so (``plugin-ascend/fake/fake_dcmi.c``), built once per session with gcc
from the documented DCMI signatures, and the device config of HAMi's chart chips."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_common.deviceplugin.testing import build_fake_library
from hami_common.settings.testing import device_config_text, vnpus

FAKE = Path(__file__).parents[1] / "fake" / "fake_dcmi.c"

# The three chips of HAMi's chart the tests use (910B3, 310P3, Ascend910).
DEVICE_CONFIG = device_config_text(vnpus=vnpus())


@pytest.fixture(scope="session")
def fake_dcmi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_library(FAKE, tmp_path_factory.mktemp("fake-dcmi") / "libdcmi.so")


@pytest.fixture
def device_config(tmp_path: Path) -> Path:
    path = tmp_path / "device-config.yaml"
    path.write_text(DEVICE_CONFIG, encoding="utf-8")
    return path
