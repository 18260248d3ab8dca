"""MPS mode against a stand-in control daemon (`fake_mps_control.py`): devices register as
``mps``, a container gets its SM share and pinned memory as MPS variables and the GPU's pipe
directory; one daemon per GPU is started, then joined (also by a restarted plugin), and stopped
with ``quit``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hami_rustcore as hc
import pytest
from google.protobuf.json_format import MessageToDict
from hami_common.deviceplugin.testing import FakeBackend, device_spec
from hami_common.deviceplugin.vendor import ContainerContext
from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.mps import MpsDaemons
from hami_plugin_nvidia.policy import REGISTER_ANNOTATION, NvidiaPolicy

FAKE = Path(__file__).parent / "fake_mps_control.py"


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[MpsDaemons]:
    control = tmp_path / "mps-control"
    control.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    control.chmod(0o755)
    # A short root: unix socket paths are limited to 107 bytes.
    d = MpsDaemons(tmp_path / "m", str(control), tmp_path / "shm")
    yield d
    d.stop_all()


def policy(tmp: Path, daemons: MpsDaemons) -> NvidiaPolicy:
    opts = NvidiaOptions(operating_mode="mps")
    return NvidiaPolicy(opts, hook_path=tmp / "hook", lock_dir=tmp / "lock", mps=daemons)


def allocate(p: NvidiaPolicy, text: str, uid: str = "u1") -> dict[str, Any]:
    pod: dict[str, Any] = {"metadata": {"uid": uid}, "spec": {"containers": [{"name": "c"}]}}
    devices = hc.decode_pod_devices(text)[0]
    ctx = ContainerContext(pod, 0, pod["spec"]["containers"][0], devices, ["x"])
    return MessageToDict(p.container_response(ctx))


def starts(daemons: MpsDaemons, gpu: str) -> list[str]:
    log = daemons.root / gpu / "log" / "control.log"
    return [line for line in log.read_text().splitlines() if line.startswith("start")]


def test_devices_register_as_mps(tmp_path: Path, daemons: MpsDaemons) -> None:
    devices = FakeBackend(device_spec(2)).discover()
    text = policy(tmp_path, daemons).node_annotations(devices, {})[REGISTER_ANNOTATION]
    assert {d.mode for d in hc.decode_node_devices(text)} == {"mps"}


def test_containers_get_mps_limits_and_share_one_daemon_per_gpu(
    tmp_path: Path, daemons: MpsDaemons
) -> None:
    p = policy(tmp_path, daemons)
    answer = allocate(p, "GPU-a,NVIDIA,3000,30:")
    pipe = str(daemons.pipe_dir("GPU-a"))
    assert answer["envs"] == {
        "NVIDIA_VISIBLE_DEVICES": "GPU-a",
        "CUDA_MPS_PIPE_DIRECTORY": pipe,
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "30",
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=3000M",
    }
    assert answer["mounts"] == [
        {"containerPath": pipe, "hostPath": pipe},
        {"containerPath": "/dev/shm", "hostPath": str(daemons.shm_dir)},
    ]
    # No core share asked for: the whole GPU (MPS has no zero share).
    assert (
        allocate(p, "GPU-a,NVIDIA,1000,0:", "u2")["envs"]["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"]
        == "100"
    )
    allocate(p, "GPU-b,NVIDIA,1000,50:", "u3")
    # One daemon per GPU, for that GPU only; a restarted plugin joins them.
    assert starts(daemons, "GPU-a") == ["start GPU-a"]
    assert starts(daemons, "GPU-b") == ["start GPU-b"]
    restarted = MpsDaemons(daemons.root, daemons.control, daemons.shm_dir)
    allocate(policy(tmp_path, restarted), "GPU-a,NVIDIA,1000,10:", "u4")
    assert restarted.started == []
    assert starts(daemons, "GPU-a") == ["start GPU-a"]
    daemons.stop_all()
    assert not daemons.alive("GPU-a")
    assert not daemons.alive("GPU-b")


def test_two_gpus_in_one_container_are_refused(tmp_path: Path, daemons: MpsDaemons) -> None:
    with pytest.raises(ValueError, match="one GPU"):
        allocate(policy(tmp_path, daemons), "GPU-a,NVIDIA,1000,10:GPU-b,NVIDIA,1000,10:")
