"""The fake libcndev.so (``plugin-cambricon/fake/fake_cndev.c``), built once per session with
gcc from the documented CNDev signatures."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FAKE = Path(__file__).parents[1] / "fake" / "fake_cndev.c"


@pytest.fixture(scope="session")
def fake_cndev(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the fake libcndev.so")
    out = tmp_path_factory.mktemp("fake-cndev") / "libcndev.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden",
         "-o", str(out), str(FAKE)],
        check=True,
    )  # fmt: skip
    return out
