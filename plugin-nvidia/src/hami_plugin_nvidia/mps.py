"""MPS mode (``operatingmode: mps``; pods opt in with ``nvidia.com/vgpu-mode: mps``): each GPU
shared through one NVIDIA MPS control daemon, and each container capped by MPS itself rather
than by the hook: ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` from its cores and
``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` from its memory.

`MpsDaemons` runs or joins the per-GPU control daemon: its pipe directory is
``<root>/<GPU-UUID>/pipe`` (mounted into the container at the same path, named by
``CUDA_MPS_PIPE_DIRECTORY``); a daemon already answering there (this plugin's before a restart,
or one an operator started) is joined, otherwise ``<control> -d`` starts one for that GPU only
(``CUDA_VISIBLE_DEVICES``). ``stop_all`` sends ``quit`` to the daemons this process started.

An MPS server and its clients also share POSIX shared memory in ``/dev/shm``: ``shm_dir`` is the
host folder that is the daemons' ``/dev/shm`` (the host's own when the plugin runs on the host;
in a container, the host folder mounted at its ``/dev/shm``), mounted at ``/dev/shm`` in each
MPS container, as NVIDIA's device plugin does. No shared IPC namespace is needed.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)
START_TIMEOUT = 10.0


class MpsError(RuntimeError):
    """The control daemon of a GPU could not be started or reached."""


class MpsDaemons:
    def __init__(
        self, root: Path, control: str = "nvidia-cuda-mps-control",
        shm_dir: Path = Path("/dev/shm"),  # noqa: S108 (the daemons' shared memory)
    ) -> None:  # fmt: skip
        self.root = root
        self.control = control
        self.shm_dir = shm_dir
        self.started: list[str] = []
        self._lock = threading.Lock()

    def pipe_dir(self, gpu_uuid: str) -> Path:
        return self.root / gpu_uuid / "pipe"

    def _env(self, gpu_uuid: str) -> dict[str, str]:
        return {
            **os.environ,
            "CUDA_VISIBLE_DEVICES": gpu_uuid,
            "CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir(gpu_uuid)),
            "CUDA_MPS_LOG_DIRECTORY": str(self.root / gpu_uuid / "log"),
        }

    def alive(self, gpu_uuid: str) -> bool:
        """A daemon answers on the GPU's control socket."""
        path = self.pipe_dir(gpu_uuid) / "control"
        try:
            if not stat.S_ISSOCK(path.stat().st_mode):
                return False
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect(str(path))
            return True
        except OSError:
            return False

    def ensure(self, gpu_uuid: str) -> Path:
        """The GPU's pipe directory, with a daemon answering there (joined or started)."""
        with self._lock:
            if self.alive(gpu_uuid):
                return self.pipe_dir(gpu_uuid)
            env = self._env(gpu_uuid)
            for key in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"):
                Path(env[key]).mkdir(parents=True, exist_ok=True)
                os.chmod(env[key], 0o777)  # noqa: S103 (the containers' clients connect)
            try:
                # No pipes to the daemon: it keeps its standard streams after this call returns.
                subprocess.run(
                    [self.control, "-d"], env=env, check=True, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=START_TIMEOUT,
                )  # fmt: skip
            except (OSError, subprocess.SubprocessError) as exc:
                raise MpsError(f"GPU {gpu_uuid}: {self.control} -d failed: {exc}") from None
            deadline = time.monotonic() + START_TIMEOUT
            while not self.alive(gpu_uuid):
                if time.monotonic() > deadline:
                    raise MpsError(f"GPU {gpu_uuid}: the MPS control daemon did not answer at "
                                   f"{self.pipe_dir(gpu_uuid)}/control")  # fmt: skip
                time.sleep(0.02)
            self.started.append(gpu_uuid)
            log.info("GPU %s: MPS control daemon started (%s)", gpu_uuid, self.pipe_dir(gpu_uuid))
            return self.pipe_dir(gpu_uuid)

    def stop_all(self) -> None:
        """``quit`` to the daemons this process started."""
        with self._lock:
            for gpu in self.started:
                try:
                    subprocess.run(
                        [self.control], input=b"quit\n", env=self._env(gpu), check=False,
                        capture_output=True, timeout=START_TIMEOUT,
                    )  # fmt: skip
                except (OSError, subprocess.SubprocessError) as exc:
                    log.warning("GPU %s: MPS daemon not stopped: %s", gpu, exc)
            self.started.clear()


def mps_env(cores: int, mems_mib: list[int], pipe_dir: Path) -> dict[str, str]:
    """The container's MPS limits: its share of the SMs (100 when it asked for none: MPS has no
    zero share) and each device's pinned memory, by index inside the container."""
    pinned = ",".join(f"{i}={m}M" for i, m in enumerate(mems_mib))
    return {
        "CUDA_MPS_PIPE_DIRECTORY": str(pipe_dir),
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": str(cores if 0 < cores <= 100 else 100),
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": pinned,
    }
