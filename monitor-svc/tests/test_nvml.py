"""The NVIDIA source through pynvml against the fake libnvidia-ml.so.1 (hook/fake): what NVML
reports of a device that a hooked process is using."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hami_monitor.nvml import device_type

BUILD = Path(__file__).resolve().parents[2] / "hook" / "build" / "release"
READ = (
    "import json, time; from dataclasses import asdict; from hami_monitor.nvml import NvmlSource\n"
    "s = NvmlSource(); print(json.dumps([asdict(d) for d in s.devices()])); s.close()"
)


def test_plugin_and_monitor_name_a_device_alike() -> None:
    # HAMi's monitor always prefixes (NVIDIA-NVIDIA A100-...), its plugin only when needed
    assert device_type("Tesla T4") == "NVIDIA-Tesla T4"
    assert device_type("NVIDIA A100-SXM4-80GB") == "NVIDIA A100-SXM4-80GB"


def test_devices_as_nvml_reports_them(tmp_path: Path) -> None:
    if not (BUILD / "fake" / "libnvidia-ml.so.1").exists():
        pytest.fail(f"the fake driver is not built in {BUILD}: run ./just build-hook")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "FAKE_GPU"))}
    env.update({"FAKE_GPU_STATE": str(tmp_path / "gpu"), "FAKE_GPU_COUNT": "2",
                "FAKE_GPU_MEM_MIB": "16384", "FAKE_GPU_UUIDS": "GPU-a,GPU-b",
                "FAKE_GPU_NAME": "Tesla T4"})  # fmt: skip
    work = subprocess.Popen(
        [str(BUILD / "t_work")], stdout=subprocess.PIPE, text=True,
        env={**env, "FAKE_GPU_VISIBLE": "1", "WORK_MIB": "500", "WORK_SECONDS": "4",
             "LD_PRELOAD": str(BUILD / "libvgpu.so"), "CUDA_DEVICE_SM_LIMIT": "40",
             "GPU_CORE_UTILIZATION_POLICY": "force", "CUDA_DEVICE_MEMORY_LIMIT_0": "1g",
             "CUDA_DEVICE_MEMORY_SHARED_CACHE": str(tmp_path / "r.cache")},
    )  # fmt: skip
    try:
        assert work.stdout is not None
        assert work.stdout.readline().startswith("ready")
        time.sleep(2.0)
        nvml = {**env, "LD_LIBRARY_PATH": str(BUILD / "fake")}
        out = subprocess.run([sys.executable, "-c", READ], capture_output=True, text=True,
                             env=nvml, check=True)  # fmt: skip
    finally:
        work.terminate()
        work.communicate(timeout=10)
    a, b = json.loads(out.stdout)
    assert (a["uuid"], a["type"], a["memory_used_bytes"]) == ("GPU-a", "NVIDIA-Tesla T4", 0)
    assert (b["index"], b["uuid"], b["memory_used_bytes"]) == (1, "GPU-b", 500 << 20)
    assert b["memory_total_bytes"] == 16384 << 20
    assert 30 <= b["utilization"] <= 50, b  # the process runs at its 40 % SM limit


def test_without_a_driver_the_error_says_what_to_check() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    code = "from hami_monitor.nvml import NvmlSource\nNvmlSource()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=False)  # fmt: skip
    assert out.returncode != 0
    assert "NVML could not be initialised" in out.stderr
    assert "--vendor none" in out.stderr
