#!/usr/bin/env python3
"""Hook overheads on the fake driver, each against the same call without the hook in the same run.

    bench_hook.py BUILD_DIR

Runs bench_hook alternately with and without libvgpu.so preloaded (ROUNDS times each, under an
8 GiB memory limit so the accounting is live), and preloaded with an SM limit (the limited
launch, against the same launch without the hook), and prints the median difference per
operation (overheads are medians of ROUNDS alternating runs, each the least disturbed of 40
batches), then the SM limiter's largest |measured - target| error over 10/30/50/70/90 %
in simulated GPU time.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROUNDS = 9
OPS = {
    "launch_ns": "hook_launch_overhead_ns",
    "alloc_free_ns": "hook_alloc_free_overhead_ns",
    "meminfo_ns": "hook_meminfo_overhead_ns",
}


def run(build: Path, argv: list[str], env_extra: dict[str, str], hooked: bool, tmp: Path) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CUDA_", "GPU_CORE", "LIBCUDA", "HAMI_", "FAKE_GPU"))
    }
    env.update(env_extra)
    env["FAKE_GPU_STATE"] = str(tmp / "gpu")
    env["CUDA_DEVICE_MEMORY_SHARED_CACHE"] = str(tmp / "shm")
    if hooked:
        env["LD_PRELOAD"] = str(build / "libvgpu.so")
    try:
        p = subprocess.run(
            [str(build / argv[0]), *argv[1:]],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
    finally:
        for name in ("gpu", "shm"):
            (tmp / name).unlink(missing_ok=True)
    return p.stdout


def parse(out: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+)=([-\d.]+)", out)}


def main() -> int:
    build = Path(sys.argv[1]).resolve()
    samples: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="hook-bench-") as d:
        tmp = Path(d)
        mem = {"CUDA_DEVICE_MEMORY_LIMIT": "8g"}
        # The same launches on a device with an SM limit that never throttles them (the kernels
        # take no GPU time): what the limiter's bookkeeping costs per launch.
        sm = {**mem, "CUDA_DEVICE_SM_LIMIT": "50", "GPU_CORE_UTILIZATION_POLICY": "force"}
        limited: list[float] = []
        for _ in range(ROUNDS):
            for hooked in (False, True):
                for key, val in parse(run(build, ["bench_hook"], mem, hooked, tmp)).items():
                    samples.setdefault((key, hooked), []).append(val)
            limited.append(parse(run(build, ["bench_hook"], sm, True, tmp))["launch_ns"])
        for key, name in OPS.items():
            base = statistics.median(samples[(key, False)])
            hook = statistics.median(samples[(key, True)])
            print(f"{name}={hook - base:.1f} ns")
            print(f"{name.replace('overhead', 'with_hook')}={hook:.1f} ns")
            print(f"{name.replace('overhead', 'without_hook')}={base:.1f} ns")
        base = statistics.median(samples[("launch_ns", False)])
        unlimited = statistics.median(samples[("launch_ns", True)])
        lim = statistics.median(limited)
        print(f"hook_launch_limited_overhead_ns={lim - base:.1f} ns")
        print(f"hook_launch_limited_with_hook_ns={lim:.1f} ns")
        print(f"hook_launch_limited_vs_unlimited_ns={lim - unlimited:.1f} ns")
        race = parse(
            run(
                build,
                ["t_race"],
                {"CUDA_DEVICE_MEMORY_LIMIT": "1g", "EXPECT_LIMIT_MIB": "1024"},
                True,
                tmp,
            )
        )
        print(f"hook_race_overgrant_rounds={race['overgrant_rounds']:.0f} of {race['rounds']:.0f}")
        errors = []
        for pct in (10, 30, 50, 70, 90):
            env = {"CUDA_DEVICE_SM_LIMIT": str(pct), "GPU_CORE_UTILIZATION_POLICY": "force"}
            util = parse(run(build, ["t_limiter", "launch", "2.0"], env, True, tmp))["util_pct"]
            errors.append(abs(util - pct))
            print(f"hook_sm_limit_util_pct_{pct}={util:.2f} %")
        print(f"hook_sm_limit_error_pts={max(errors):.2f} pts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
