"""The fake libdcmi.so (``plugin-ascend/fake/fake_dcmi.c``), built once per session with gcc
from the documented DCMI signatures, and the device config of HAMi's chart chips."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FAKE = Path(__file__).parents[1] / "fake" / "fake_dcmi.c"

# Chips of HAMi's chart (v2.10 layout), the three the tests use.
DEVICE_CONFIG = """
vnpus:
  hamiVnpuCore: false
  configs:
  - chipName: 910B3
    commonWord: Ascend910B3
    resourceName: huawei.com/Ascend910B3
    resourceMemoryName: huawei.com/Ascend910B3-memory
    resourceCoreName: huawei.com/Ascend910B3-core
    memoryAllocatable: 65536
    memoryCapacity: 65536
    aiCore: 20
    aiCPU: 7
    templates:
      - {name: vir05_1c_16g, memory: 16384, aiCore: 5, aiCPU: 1}
      - {name: vir10_3c_32g, memory: 32768, aiCore: 10, aiCPU: 3}
  - chipName: 310P3
    commonWord: Ascend310P
    resourceName: huawei.com/Ascend310P
    resourceMemoryName: huawei.com/Ascend310P-memory
    resourceCoreName: huawei.com/Ascend310P-core
    memoryAllocatable: 21527
    memoryCapacity: 24576
    aiCore: 8
    aiCPU: 7
    templates:
      - {name: vir01, memory: 3072, aiCore: 1, aiCPU: 1}
      - {name: vir02, memory: 6144, aiCore: 2, aiCPU: 2}
      - {name: vir04, memory: 12288, aiCore: 4, aiCPU: 4}
  - chipName: Ascend910
    commonWord: Ascend910C
    resourceName: huawei.com/Ascend910C
    resourceMemoryName: huawei.com/Ascend910C-memory
    resourceCoreName: huawei.com/Ascend910C-core
    memoryAllocatable: 65536
    memoryCapacity: 65536
    aiCore: 20
    aiCPU: 7
    superPod: true
    templates:
      - {name: vir05_1c_16g, memory: 16384, aiCore: 5, aiCPU: 1}
      - {name: vir10_3c_32g, memory: 32768, aiCore: 10, aiCPU: 3}
"""


@pytest.fixture(scope="session")
def fake_dcmi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the fake libdcmi.so")
    out = tmp_path_factory.mktemp("fake-dcmi") / "libdcmi.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden",
         "-o", str(out), str(FAKE)],
        check=True,
    )  # fmt: skip
    return out


@pytest.fixture
def device_config(tmp_path: Path) -> Path:
    path = tmp_path / "device-config.yaml"
    path.write_text(DEVICE_CONFIG, encoding="utf-8")
    return path
