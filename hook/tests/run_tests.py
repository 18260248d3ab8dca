#!/usr/bin/env python3
"""Run the hook's test programs against the fake driver, with and without libvgpu.so preloaded.

    run_tests.py BUILD_DIR [--flavour release|asan|ubsan|tsan] [--quick] [-k NAME_PART]

Every case gets a fresh simulated GPU and shared region; a hooked run must also leave stderr
empty (the library is quiet by default). Prints one line per case and 'N passed, N failed'.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LIMIT = {"CUDA_DEVICE_MEMORY_LIMIT": "1024m", "EXPECT_LIMIT_MIB": "1024"}


@dataclass
class Case:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    hooked: bool = True
    timeout: float = 180.0
    attempts: int = 1  # timing cases may be retried: the machine is shared with other builds
    post: Callable[[Path], str] | None = None  # check on the region after exit: "" = fine


def cases(quick: bool, flavour: str) -> list[Case]:
    out: list[Case] = [Case("exports/only-intended-symbols", ["@exports"])]
    if flavour == "release":  # sanitizer builds link their newer runtimes on purpose
        out.append(Case("abi/loads-with-glibc-2.17", ["@glibc"]))
    kinds = ["alloc", "pitch", "managed", "async", "pool", "vmm", "array", "array3d", "mipmap"]
    routes = ["direct", "dlopen", "procaddr", "procaddr_ptds"]
    for kind in kinds:
        for route in routes:
            out.append(Case(f"alloc/{kind}/{route}", ["t_alloc", kind, route], dict(LIMIT)))
        out.append(Case(f"alloc/{kind}/unhooked", ["t_alloc", kind, "direct"], hooked=False))
    # Limit sources: per-device env form with units, the limits file over the env, bad values.
    out.append(
        Case(
            "config/indexed-gi",
            ["t_alloc", "alloc", "direct"],
            {"CUDA_DEVICE_MEMORY_LIMIT_0": "1Gi", "EXPECT_LIMIT_MIB": "1024"},
        )
    )
    out.append(
        Case(
            "config/file-wins",
            ["t_alloc", "alloc", "direct"],
            {
                "CUDA_DEVICE_MEMORY_LIMIT": "4g",
                "EXPECT_LIMIT_MIB": "512",
                "LIMITS_FILE": "CUDA_DEVICE_MEMORY_LIMIT_0=512m\n",
            },
        )
    )
    out.append(
        Case(
            "config/disable-control",
            ["t_alloc", "alloc", "direct"],
            {"CUDA_DEVICE_MEMORY_LIMIT": "1g", "CUDA_DISABLE_CONTROL": "true"},
        )
    )
    out.append(
        Case(
            "config/garbage-is-unlimited",
            ["t_alloc", "alloc", "direct"],
            {"CUDA_DEVICE_MEMORY_LIMIT": "lots", "EXPECTED_STDERR": "invalid"},
        )
    )
    # Memory the driver holds beyond allocations (contexts, lazily loaded modules) counts.
    ctx = {**LIMIT, "FAKE_GPU_CTX_MIB": "300", "EXPECT_EXTRA_MIB": "300"}
    module = {**ctx, "FAKE_GPU_MODULE_MIB": "100", "EXPECT_EXTRA_MIB": "400"}
    out.append(Case("ctxmem/context-300MiB", ["t_ctxmem", "alloc"], ctx))
    out.append(Case("ctxmem/context-and-lazy-module", ["t_ctxmem", "alloc"], module))
    out.append(
        Case(
            "ctxmem/driver-in-host-pid-namespace",
            ["t_ctxmem", "alloc"],
            {**module, "FAKE_GPU_PID_OFFSET": "100000"},
        )
    )
    procs = {
        "CUDA_DEVICE_MEMORY_LIMIT": "2048m",
        "EXPECT_LIMIT_MIB": "2048",
        "FAKE_GPU_CTX_MIB": "300",
        "EXPECT_EXTRA_MIB": "1200",
        "PROCS": "4",
    }
    out.append(Case("ctxmem/4-processes", ["t_ctxmem", "procs"], procs))
    out.append(
        Case(
            "ctxmem/4-processes-host-pids",
            ["t_ctxmem", "procs"],
            {**procs, "FAKE_GPU_PID_OFFSET": "100000"},
        )
    )
    out.append(
        Case(
            "ctxmem/unhooked",
            ["t_ctxmem", "alloc"],
            {"FAKE_GPU_CTX_MIB": "300", "NOMINAL_MIB": "1024"},
            hooked=False,
        )
    )
    # Oversubscription: 2048 MiB granted on a 1024 MiB device, half of it spilled to host memory.
    spill_reader = (
        "import os, sys; from hami_common.shm.region import read_region as r; "
        "d = r(sys.argv[1]).devices[0]; held = os.environ['PHASE'] == 'held'; "
        "want = (int(os.environ['EXPECT_SPILL_MIB']) << 20) if held else 0; "
        "assert d.spilled_bytes == want, (os.environ['PHASE'], d.spilled_bytes, want)"
    )
    over = {
        "CUDA_DEVICE_MEMORY_LIMIT": "2048m",
        "EXPECT_LIMIT_MIB": "2048",
        "FAKE_GPU_MEM_MIB": "1024",
    }
    for name, extra in [
        ("spills-to-host", {"CUDA_OVERSUBSCRIBE": "true", "EXPECT_SPILL_MIB": "1024"}),
        ("off-stops-at-the-device", {"EXPECT_SPILL_MIB": "0"}),
        # every other path that allocates device memory spills too
        *((f"spills-{route}", {"CUDA_OVERSUBSCRIBE": "true", "EXPECT_SPILL_MIB": "1024",
                               "ROUTE": route})
          for route in ("pitch", "async", "pool", "vmm")),
    ]:  # fmt: skip
        argv = ["t_oversub", sys.executable, "-c", spill_reader, "@SHM"]
        out.append(Case(f"oversubscribe/{name}", argv, {**over, **extra}))
    out.append(Case("routes/hooked", ["t_routes"], {"EXPECT_HOOKED": "1"}))
    out.append(Case("routes/unhooked", ["t_routes"], hooked=False))
    out.append(
        Case(
            "meminfo/limited",
            ["t_meminfo"],
            {"CUDA_DEVICE_MEMORY_LIMIT_0": "1024m", "EXPECT_LIMIT_MIB": "1024"},
        )
    )
    out.append(Case("meminfo/unhooked", ["t_meminfo"], hooked=False))
    rounds = "100" if quick else "1000"
    out.append(Case("race/4x300MiB", ["t_race"], {**LIMIT, "ROUNDS": rounds}))
    out.append(Case("race/unhooked", ["t_race"], {"ROUNDS": "50"}, hooked=False))
    out.append(Case("share/16-processes", ["t_share"], dict(LIMIT)))
    out.append(Case("share/unhooked", ["t_share"], hooked=False))
    out.append(
        Case("kill/sigkill-reclaim", ["t_kill"], {**LIMIT, "KILLS": "20" if quick else "60"})
    )
    out.append(Case("side-effects", ["t_side"], dict(LIMIT)))
    out.append(Case("region/previous-boot-reformatted", ["t_reboot"], dict(LIMIT), timeout=30))
    out.append(Case("fork/child-gets-own-slot", ["t_fork"], dict(LIMIT), timeout=60))
    policy = {"GPU_CORE_UTILIZATION_POLICY": "force"}
    targets = ["50"] if quick else ["10", "30", "50", "70", "90"]
    for pct in targets:
        out.append(
            Case(
                f"limiter/launch/{pct}",
                ["t_limiter", "launch", "1.5"],
                {**policy, "CUDA_DEVICE_SM_LIMIT": pct, "EXPECT_UTIL": pct},
                attempts=3,
            )
        )
    for path in ["launch_ptsz", "ex", "coop", "graph"]:
        out.append(
            Case(
                f"limiter/{path}/40",
                ["t_limiter", path, "1.2"],
                {**policy, "CUDA_DEVICE_SM_LIMIT": "40", "EXPECT_UTIL": "40"},
                attempts=3,
            )
        )
    # Small kernels: most launches are not measured, yet the share holds (a step of seven short
    # kernels and a long one: each kernel's remembered time, not a random sample, is charged).
    small = {**policy, "WINDOW": "128"}
    mixes = [  # name, kernel lengths (us), target, most launches measured (%)
        ("small-kernels/30", {"KERNEL_US": "50"}, "30", "10"),
        ("kernel-mix/30", {"KERNEL_PATTERN": "20,20,20,20,20,20,20,600"}, "30", "15"),
        ("kernel-mix/70", {"KERNEL_PATTERN": "50,50,50,400"}, "70", "25"),
    ]
    for name, kernels, pct, most in mixes:
        env = {**small, **kernels, "CUDA_DEVICE_SM_LIMIT": pct, "EXPECT_UTIL": pct}
        env["EXPECT_MEASURED_MAX"] = most
        out.append(Case(f"limiter/{name}", ["t_limiter", "launch", "1.5"], env, attempts=3))
    out.append(Case("limiter/two-containers-30-70", ["t_pair"], dict(policy), attempts=3))
    default30 = {"CUDA_DEVICE_SM_LIMIT": "30"}  # policy "default": the monitor's switch decides
    out.append(Case("limiter/monitor-switch", ["t_policy", "switch"], default30, attempts=3))
    out.append(Case("limiter/priority-block", ["t_policy", "block"], default30))
    out.append(
        Case(
            "limiter/policy-disable",
            ["t_limiter", "launch", "1.0"],
            {
                "GPU_CORE_UTILIZATION_POLICY": "disable",
                "CUDA_DEVICE_SM_LIMIT": "30",
                "EXPECT_UTIL": "97",
                "TOL": "6",
            },
            attempts=3,
        )
    )
    out.append(
        Case(
            "limiter/unhooked",
            ["t_limiter", "launch", "1.0"],
            {"EXPECT_UTIL": "97", "TOL": "6"},
            hooked=False,
            attempts=3,
        )
    )
    reader = (
        "import sys; from hami_common.shm.region import read_region as r; s = r(sys.argv[1]); "
        "d = s.devices[0]; p = s.processes; "
        "assert (d.limit_bytes, d.used_bytes) == (1 << 30, 300 << 20), d; "
        "assert len(p) == 1 and p[0].alive and p[0].used_bytes[0] == 300 << 20, p"
    )
    out.append(
        Case(
            "reader/python-sees-live-then-dead",
            ["t_hold", "300", sys.executable, "-c", reader, "@SHM"],
            dict(LIMIT),
            post=reader_after_exit,
        )
    )
    return out


def reader_after_exit(shm: Path) -> str:
    """The monitor's view once the process died: its usage is still listed, marked dead."""
    from hami_common.shm.region import read_region  # noqa: PLC0415 - only with the workspace

    snap = read_region(shm)
    procs = snap.processes
    if len(procs) != 1 or procs[0].alive or snap.devices[0].used_bytes != 300 << 20:
        return f"after exit: {procs} used={snap.devices[0].used_bytes}"
    return ""


def sanitizer_runtime(flavour: str) -> list[str]:
    lib = {"asan": "libasan.so", "tsan": "libtsan.so"}.get(flavour)
    if not lib:
        return []
    path = subprocess.run(
        ["gcc", f"-print-file-name={lib}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return [path]


def check_exports(build: Path) -> tuple[bool, str]:
    """libvgpu.so exports exactly dlsym and the hooked names of the two lists."""
    nm = subprocess.run(
        ["nm", "-D", "--defined-only", str(build / "libvgpu.so")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    exported = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    script = (build / "exports.map").read_text()
    wanted = {w.strip().rstrip(";") for w in script.split("global:")[1].split("local:")[0].split()}
    if exported != wanted:
        return False, f"unexpected exports {sorted(exported ^ wanted)}"
    return True, f"{len(exported)} symbols"


def check_glibc_floor(build: Path) -> tuple[bool, str]:
    """The release library needs nothing newer than glibc 2.17 (src/glibc_compat.h)."""
    dyn = subprocess.run(
        ["objdump", "-T", str(build / "libvgpu.so")], capture_output=True, text=True, check=True
    ).stdout
    versions = {tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_([\d.]+)", dyn)}
    newest = max(versions)
    if newest > (2, 17):
        return False, f"needs GLIBC_{'.'.join(map(str, newest))}: {dyn}"
    return True, f"newest GLIBC_{'.'.join(map(str, newest))}"


def run_case(build: Path, case: Case, flavour: str, tmp: Path) -> tuple[bool, str]:
    if case.argv == ["@exports"]:
        return check_exports(build)
    if case.argv == ["@glibc"]:
        return check_glibc_floor(build)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CUDA_", "GPU_CORE", "LIBCUDA", "HAMI_", "FAKE_GPU"))
    }
    env.update(case.env)
    tag = case.name.replace("/", "_")
    env["FAKE_GPU_STATE"] = str(tmp / f"{tag}.gpu")
    # What a node's driver install provides: the hook finds NVML there (contexts, modules).
    env["LD_LIBRARY_PATH"] = str(build / "fake")
    env["CUDA_DEVICE_MEMORY_SHARED_CACHE"] = str(tmp / f"{tag}.shm")
    env["ASAN_OPTIONS"] = "detect_leaks=0"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    # The hook starts its anchor thread in forked children on purpose (t_fork).
    env["TSAN_OPTIONS"] = "halt_on_error=1:die_after_fork=0"
    expected_stderr = env.pop("EXPECTED_STDERR", "")
    if "LIMITS_FILE" in env:
        limits = tmp / f"{tag}.limits"
        # Each case's own region: the default path is shared by everything on the machine.
        shm = f"CUDA_DEVICE_MEMORY_SHARED_CACHE={env['CUDA_DEVICE_MEMORY_SHARED_CACHE']}\n"
        limits.write_text(env.pop("LIMITS_FILE") + shm)
        env["HAMI_VGPU_LIMITS_FILE"] = str(limits)
    if case.hooked:
        env["LD_PRELOAD"] = ":".join([*sanitizer_runtime(flavour), str(build / "libvgpu.so")])
    argv = [a.replace("@SHM", env["CUDA_DEVICE_MEMORY_SHARED_CACHE"]) for a in case.argv[1:]]
    try:
        p = subprocess.run(
            [str(build / case.argv[0]), *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=case.timeout,
            check=False,
        )
        if p.returncode != 0:
            return False, f"exit {p.returncode}: {(p.stdout + p.stderr).strip()}"
        problem = case.post(tmp / f"{tag}.shm") if case.post else ""
        if problem:
            return False, problem
    except subprocess.TimeoutExpired:
        return False, f"timed out after {case.timeout:.0f} s"
    finally:
        for suffix in (".gpu", ".shm", ".limits"):
            (tmp / f"{tag}{suffix}").unlink(missing_ok=True)
    stderr = p.stderr.strip()
    if expected_stderr and expected_stderr not in stderr:
        return False, f"expected '{expected_stderr}' on stderr, got: {stderr!r}"
    if not expected_stderr and stderr:
        return False, f"unexpected stderr: {stderr}"
    return True, p.stdout.strip().splitlines()[0] if p.stdout.strip() else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("build", type=Path)
    ap.add_argument("--flavour", default="release")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and limiter targets")
    ap.add_argument("-k", dest="only", default="", help="only the cases whose name contains it")
    args = ap.parse_args()
    build = args.build.resolve()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="hook-tests-") as d:
        for case in cases(args.quick, args.flavour):
            if args.only not in case.name:
                continue
            start = time.monotonic()
            for attempt in range(1, case.attempts + 1):
                ok, detail = run_case(build, case, args.flavour, Path(d))
                if ok:
                    break
                print(f"  attempt {attempt} of {case.name}: {detail}", flush=True)
            took = time.monotonic() - start
            label = "PASS" if ok else "FAIL"
            print(f"{label} [{args.flavour}] {case.name} ({took:.1f}s) {detail}", flush=True)
            passed += ok
            failed += not ok
    print(f"{args.flavour}: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
