"""The node images where the charts put them (images/README.md): each vendor plugin loads its
vendor library from the host folder its chart mounts (fake libraries built from the vendors'
documented signatures stand for the drivers), the monitor loads NVML where the NVIDIA container
runtime puts it and, as its non-root user, removes what pods left in the hook's folders because
the NVIDIA plugin's install step gives those folders its group. Needs ``./just images`` and
``./just build-hook`` (``./just test-images`` runs both)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hami_images.buildah import Container
from hami_images.catalog import NONROOT
from hami_images.inputs import repo_root

ROOT = repo_root()
FAKE_NVML = ROOT / "hook" / "build" / "release" / "fake" / "libnvidia-ml.so.1"
# Where the charts mount the vendors' folders (charts/hami/charts/hami-{ascend,cambricon}:
# driverPath, neuwarePath) and what they name in the plugins' flags and LD_LIBRARY_PATH.
ASCEND_DRIVER = "/usr/local/Ascend/driver"
DCMI = f"{ASCEND_DRIVER}/lib64/driver/libdcmi.so"
DCMI_PATH = f"{ASCEND_DRIVER}/lib64/driver:{ASCEND_DRIVER}/lib64/common"
NEUWARE = "/usr/local/neuware"
CNDEV = f"{NEUWARE}/lib64/libcndev.so"
# Where the NVIDIA container toolkit mounts the driver's NVML into a Debian-based container.
NVML_DIR = "/usr/lib/x86_64-linux-gnu"
MONITOR_USER = f"{NONROOT}:{NONROOT}"


def fake_library(source: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    gcc = shutil.which("gcc")
    assert gcc is not None, "gcc builds the fake vendor libraries"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-fvisibility=hidden", "-o", str(out),
                    str(source)], check=True)  # fmt: skip
    return out


def python(container: Container, code: str, **kw: Any) -> Any:
    """``code`` run by the image's python3; its last stdout line, as JSON."""
    done = container.run(["python3", "-c", code], **kw)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_ascend_plugin_loads_dcmi_from_the_driver_folder(
    containers: Any, tmp_path: Path
) -> None:
    """libdcmi.so from the host's Ascend driver, mounted read-only where the chart mounts it,
    loaded through ctypes by the image's python: the NPUs are discovered. Without the driver,
    the entry point says what to install and exits 1."""
    driver = tmp_path / "driver"
    fake_library(
        ROOT / "plugin-ascend" / "fake" / "fake_dcmi.c", driver / "lib64/driver/libdcmi.so"
    )
    (driver / "lib64" / "common").mkdir()
    plugin = containers["plugin-ascend"]
    code = ("import json; from hami_plugin_ascend.dcmi import DcmiBackend; "
            f"npus = DcmiBackend({DCMI!r}).discover(); "
            "print(json.dumps([[d.model, d.uuid] for d in npus]))")  # fmt: skip
    found = python(plugin, code, volumes={driver: ASCEND_DRIVER},
                   env={"LD_LIBRARY_PATH": DCMI_PATH, "FAKE_DCMI_CARDS": "2"})  # fmt: skip
    assert [model for model, _ in found] == ["910B3", "910B3"]
    assert found[0][1] == "00001000-00002000-00003000-00004000-00005000"
    config = tmp_path / "config"
    config.mkdir()
    (config / "device-config.yaml").write_text("vnpus: {configs: []}\n")
    bare = plugin.run(["hami-entrypoint", "--node-name=n", f"--dcmi-library={DCMI}",
                       "--device-config-file=/config/device-config.yaml"],
                      volumes={config: "/config"})  # fmt: skip
    assert bare.returncode == 1, bare.stdout + bare.stderr
    assert f"cannot load the DCMI library '{DCMI}'" in bare.stderr
    assert "Traceback" not in bare.stderr


def test_the_cambricon_plugin_loads_cndev_from_neuware(containers: Any, tmp_path: Path) -> None:
    neuware = tmp_path / "neuware"
    fake_library(ROOT / "plugin-cambricon" / "fake" / "fake_cndev.c",
                 neuware / "lib64" / "libcndev.so")  # fmt: skip
    code = ("import json; from hami_plugin_cambricon.cndev import CndevBackend; "
            f"mlus = CndevBackend({CNDEV!r}).discover(); "
            "print(json.dumps([d.model for d in mlus]))")  # fmt: skip
    env = {"LD_LIBRARY_PATH": f"{NEUWARE}/lib64", "FAKE_CNDEV_CARDS": "3"}
    found = python(containers["plugin-cambricon"], code, volumes={neuware: NEUWARE}, env=env)
    assert found == ["MLU370-X8"] * 3


def test_the_monitor_reads_nvml_as_its_non_root_user(containers: Any, tmp_path: Path) -> None:
    """NVML (libnvidia-ml.so.1, found by its soname as the NVIDIA runtime mounts it) answers the
    monitor's own user: the GPUs are listed with the plugin's type names."""
    assert FAKE_NVML.is_file(), f"{FAKE_NVML} is missing: ./just build-hook"
    lib = tmp_path / "nvml"
    lib.mkdir()
    shutil.copy2(FAKE_NVML, lib / "libnvidia-ml.so.1")
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    env = {"FAKE_GPU_STATE": "/state/gpu", "FAKE_GPU_COUNT": "2", "FAKE_GPU_MEM_MIB": "16384",
           "FAKE_GPU_UUIDS": "GPU-aaaa,GPU-bbbb", "FAKE_GPU_NAME": "Tesla T4"}  # fmt: skip
    code = ("import json; from hami_monitor.nvml import NvmlSource; "
            "print(json.dumps([[d.uuid, d.type] for d in NvmlSource().devices()]))")  # fmt: skip
    found = python(containers["monitor"], code, user=MONITOR_USER, env=env,
                   volumes={lib / "libnvidia-ml.so.1": f"{NVML_DIR}/libnvidia-ml.so.1",
                            state: "/state"})  # fmt: skip
    assert found == [["GPU-aaaa", "NVIDIA-Tesla T4"], ["GPU-bbbb", "NVIDIA-Tesla T4"]]


def _left_behind(vgpu: Path) -> tuple[Path, Path]:
    """What the plugin (root) leaves for a container of a pod that left the node: its folder
    (0777, with the region its processes wrote, 0666) and its limits file (0444)."""
    uid = "11111111-2222-3333-4444-555555555555"
    folder = vgpu / "containers" / f"{uid}_main"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    region = folder / "a.cache"
    region.write_bytes(b"\0" * 64)
    region.chmod(0o666)
    os.chown(region, 1000, 1000)  # the container's user
    limits = vgpu / "limits" / f"{uid}_main.conf"
    limits.parent.mkdir(parents=True, exist_ok=True)
    limits.write_text("CUDA_DEVICE_SM_LIMIT=30\n")
    limits.chmod(0o444)
    old = 1_000_000_000.0
    os.utime(folder, (old, old))
    return folder, limits


REAP = ("from pathlib import Path; import json, time; "
        "from hami_monitor.containers import container_folders, reap; "
        "root = Path('/usr/local/vgpu'); "
        "reap(container_folders(root / 'containers'), set(), older_than=1, now=time.time(), "
        "limits_dir=root / 'limits'); print(json.dumps(True))")  # fmt: skip


@pytest.mark.parametrize("installed", [True, False], ids=["after-install-step", "root-only"])
def test_the_monitor_reaps_as_its_user_through_the_install_steps_group(
    containers: Any, tmp_path: Path, installed: bool
) -> None:
    """The NVIDIA plugin's install step, run in group 65532 as the chart runs it, makes the
    hook's containers/ and limits/ folders that group's (mode 2775): the monitor, uid and gid
    65532 with no capability, then removes the folder and limits file of a pod that left.
    Folders only root may write (no install step) keep them: the group is what allows it."""
    vgpu = tmp_path / "vgpu"
    vgpu.mkdir()
    if installed:
        done = containers["plugin-nvidia"].run(["hami-install-hook", "/usr/local/vgpu"],
                                               user=f"0:{NONROOT}",
                                               volumes={vgpu: "/usr/local/vgpu"})  # fmt: skip
        assert done.returncode == 0, done.stderr
        for name in ("containers", "limits"):
            info = (vgpu / name).stat()
            assert (info.st_uid, info.st_gid) == (0, NONROOT), name
            assert stat.S_IMODE(info.st_mode) == 0o2775, oct(info.st_mode)
    else:
        (vgpu / "containers").mkdir(mode=0o755)
        (vgpu / "limits").mkdir(mode=0o755)
    folder, limits = _left_behind(vgpu)
    done = containers["monitor"].run(["python3", "-c", REAP], user=MONITOR_USER,
                                     volumes={vgpu: "/usr/local/vgpu"})  # fmt: skip
    assert (done.returncode == 0) == installed, done.stderr  # root-only: PermissionError
    assert folder.exists() != installed
    assert limits.exists() != installed
