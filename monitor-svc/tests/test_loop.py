"""The monitor's pass with the real hook: processes preloaded with libvgpu.so on the fake driver
(hook/fake, built by ``./just build-hook``) write real regions, and the loop's decisions change
what those processes can do."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hami_common.shm import read_region
from hami_monitor.containers import Scanner
from hami_monitor.loop import MonitorLoop
from hami_monitor.pods import PodIndex
from hami_monitor.testing import ALLOCATED, gpu_pod

BUILD = Path(__file__).resolve().parents[2] / "hook" / "build" / "release"
TICK = 0.2


@pytest.fixture(scope="module")
def build() -> Path:
    if not (BUILD / "libvgpu.so").exists() or not (BUILD / "t_work").exists():
        pytest.fail(f"the hook is not built in {BUILD}: run ./just build-hook")
    return BUILD


class Work:
    """One container's process (t_work): its launch count over time, from its reports."""

    def __init__(self, build: Path, region: Path, gpu_state: Path, **env: str) -> None:
        region.parent.mkdir(parents=True, exist_ok=True)
        full = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "FAKE_GPU"))}
        full.update({"LD_PRELOAD": str(build / "libvgpu.so"), "FAKE_GPU_STATE": str(gpu_state),
                     "FAKE_GPU_COUNT": "1", "CUDA_DEVICE_MEMORY_SHARED_CACHE": str(region),
                     "CUDA_DEVICE_MEMORY_LIMIT_0": "1g", "WORK_MIB": "100",
                     "WORK_KERNEL_US": "2000", "WORK_REPORT_MS": "50", **env})  # fmt: skip
        self.region = region
        self.proc = subprocess.Popen([str(build / "t_work")], env=full, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.reports: list[tuple[float, int]] = []
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())
            if line.startswith("t_ms="):
                count = int(line.split("launches=")[1])
                self.reports.append((time.monotonic(), count))

    def launches_at(self, t: float) -> int:
        """The launch count reported last before monotonic time `t`."""
        before = [n for at, n in self.reports if at <= t]
        return before[-1] if before else 0

    def stop(self) -> str:
        """Stops the process; its stderr (empty for a quiet hook)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)  # it ends at the pipe's end
        assert self.proc.stderr is not None
        assert self.proc.stdout is not None
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        self.proc.stdout.close()
        return err


@pytest.fixture
def ticking(tmp_path: Path) -> Iterator[tuple[MonitorLoop, Path]]:
    """A monitor loop over ``tmp_path/containers``, one pass every TICK seconds in a thread,
    with two pods on this node sharing device GPU-x (``hi`` and ``lo``)."""
    root = tmp_path / "containers"
    pods = PodIndex(None, "node-1", ALLOCATED)
    pods.apply(
        "SYNC",
        {
            "items": [
                gpu_pod("hi", [[("GPU-x", 1000, 50)]], containers=["main"]),
                gpu_pod("lo", [[("GPU-x", 1000, 50)]], containers=["main"]),
            ]
        },
    )
    loop = MonitorLoop(Scanner(root), pods, feedback=True, interval=TICK, reap_after=-1,
                       limits_dir=None)  # fmt: skip
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            loop.tick()
            stop.wait(TICK)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield loop, root
    stop.set()
    thread.join(timeout=5)


def wait_for(probe: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        time.sleep(0.05)


def test_low_priority_is_held_while_high_priority_launches(
    build: Path, tmp_path: Path, ticking: tuple[MonitorLoop, Path]
) -> None:
    loop, root = ticking
    gpu = tmp_path / "gpu.state"
    shared = {"CUDA_DEVICE_SM_LIMIT": "50"}  # policy default: the loop's switch decides
    lo = Work(build, root / "uid-lo_main" / "lo.cache", gpu, CUDA_TASK_PRIORITY="1", **shared)
    hi: Work | None = None
    try:
        wait_for(
            lambda: lo.region.exists() and read_region(lo.region).utilization_switch == 0,
            10,
            "alone on its device, the low-priority container runs unthrottled",
        )
        assert lo.launches_at(time.monotonic()) > 0
        hi = Work(build, root / "uid-hi_main" / "hi.cache", gpu, CUDA_TASK_PRIORITY="0",
                  WORK_SECONDS="4", **shared)  # fmt: skip
        wait_for(
            lambda: read_region(lo.region).recent_kernel == -1 and lo.region in loop.held,
            5,
            "the low-priority container held once the high-priority one launches",
        )
        time.sleep(3 * TICK)  # launches that passed the check before the hold have finished
        t0 = time.monotonic()
        time.sleep(1.5)
        t1 = time.monotonic()
        assert hi.proc.poll() is None, "the high-priority process ended inside the window"
        held = lo.launches_at(t1) - lo.launches_at(t0)
        assert held <= 1, f"low priority ran {held} launches while high priority was busy"
        assert hi.launches_at(t1) - hi.launches_at(t0) > 100, "high priority ran meanwhile"
        assert hi.proc.wait(timeout=30) == 0, hi.stop()
        ended = time.monotonic()
        wait_for(
            lambda: lo.launches_at(time.monotonic()) - lo.launches_at(ended) > 50,
            10,
            "the low-priority container runs again after the high-priority one ended",
        )
        assert lo.region not in loop.held
    finally:
        for w in (lo, hi):
            if w is not None:
                assert w.stop() == "", "a hooked process must leave stderr empty"


def test_utilization_is_measured_from_the_limiter(
    build: Path, tmp_path: Path, ticking: tuple[MonitorLoop, Path]
) -> None:
    loop, root = ticking
    # two peers at one priority share the device: the loop keeps their SM limit on
    a = Work(build, root / "uid-hi_main" / "a.cache", tmp_path / "gpu.state",
             CUDA_DEVICE_SM_LIMIT="30", CUDA_TASK_PRIORITY="1")  # fmt: skip
    b = Work(build, root / "uid-lo_main" / "b.cache", tmp_path / "gpu.state",
             CUDA_DEVICE_SM_LIMIT="20", CUDA_TASK_PRIORITY="1")  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = (loop.utilization.get(a.region, (0.0,))[0],
                   loop.utilization.get(b.region, (0.0,))[0])  # fmt: skip
            if abs(got[0] - 30) < 6 and abs(got[1] - 20) < 6:
                break
            time.sleep(TICK)
        assert abs(got[0] - 30) < 6, got
        assert abs(got[1] - 20) < 6, got
        assert read_region(a.region).utilization_switch == 1
    finally:
        assert a.stop() == ""
        assert b.stop() == ""
