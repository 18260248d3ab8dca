"""Each built image, run with buildah (chroot isolation): its entrypoint starts and answers
``--help``, it carries its labels and runs as its user, it holds no compiler, package manager
cache or pip, the kubeconfig loaders still import (parts of packages are pruned), and the plugin
image installs its hook onto a "node" folder, where the installed library loads against the fake
driver and enforces a limit. Needs ``./just images`` and ``./just build-hook`` first (``./just
test-images`` runs both)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hami_images.build import Builder, Built
from hami_images.buildah import Container
from hami_images.catalog import HOOK_DIR, IMAGES, NONROOT, ImageSpec
from hami_images.inputs import repo_root

HOOK_BUILD = repo_root() / "hook" / "build" / "release"


def entrypoint(builder: Builder, built: Built) -> list[str]:
    config = builder.cache.buildah.inspect(builder.in_storage(built))["config"]
    return list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])


def test_entrypoint_answers_help(
    builder: Builder, image: tuple[ImageSpec, Built], container: Container
) -> None:
    _, built = image
    done = container.run([*entrypoint(builder, built), "--help"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: "), done.stdout[:300]
    assert "--kubeconfig" in done.stdout


def test_labels_user_and_size_line(builder: Builder, image: tuple[ImageSpec, Built]) -> None:
    spec, built = image
    config = builder.cache.buildah.inspect(builder.in_storage(built))["config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == built.version
    assert labels["org.opencontainers.image.title"] == spec.repository
    assert labels["org.opencontainers.image.source"]
    assert labels["io.hami-rs.inputs.sha256"] == built.key
    assert config["User"] == str(spec.user)
    assert (spec.user == 0) == bool(spec.root_because)
    assert built.reference == f"docker.io/{spec.repository}:{built.version}"
    assert built.size_line.startswith(f"image_{spec.name.replace('-', '_')}_mb=")
    assert built.size_line.endswith(" MB")
    assert Path(built.archive).stat().st_size == built.archive_bytes


def test_runs_as_its_user_without_compilers_or_caches(
    image: tuple[ImageSpec, Built], container: Container
) -> None:
    spec, _ = image
    who = container.run(["id", "-u"])
    assert who.stdout.strip() == str(spec.user)
    probe = ("for t in gcc cc c++ make pip pip3; do command -v $t && exit 1; done; "
             "ls /var/lib/apt/lists /var/cache/apt | grep -v '^/' | grep -v '^$' && exit 1; "
             "python3 -c 'import pip' 2>/dev/null && exit 1; exit 0")  # fmt: skip
    done = container.run(["sh", "-c", probe])
    assert done.returncode == 0, f"found: {done.stdout.strip()} {done.stderr.strip()}"


def test_kubeconfig_loaders_import_after_pruning(container: Container) -> None:
    """The image prunes parts of the kubernetes package that nothing imports (catalog.PRUNED);
    the loaders hami_common.k8s uses must still import."""
    code = (
        "import hami_common.k8s.config, kubernetes.config.kube_config, "
        "kubernetes.config.incluster_config, kubernetes.config.exec_provider; print('ok')"
    )
    done = container.run(["python3", "-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.fixture
def plugin(containers: Any) -> Container:
    made: Container = containers["plugin-nvidia"]  # conftest.Containers
    return made


def test_hook_install_step_puts_the_library_on_the_node(plugin: Container, tmp_path: Path) -> None:
    node = tmp_path / "vgpu"  # the host folder; the chart mounts it at the same path
    node.mkdir()  # hostPath DirectoryOrCreate
    first = plugin.run(["hami-install-hook", "/usr/local/vgpu"], volumes={node: "/usr/local/vgpu"})
    assert first.returncode == 0, first.stderr
    version = plugin.run(["cat", f"{HOOK_DIR}/VERSION"]).stdout.strip()
    versioned = node / f"libvgpu.so.{version}"
    assert versioned.read_bytes() == (node / "libvgpu.so").read_bytes()
    assert (node / "ld.so.preload").read_text() == "/usr/local/vgpu/libvgpu.so\n"
    assert not [p.name for p in node.iterdir() if ".new." in p.name or p.name.startswith(".")]
    # Run again: nothing rewritten. A changed library is replaced by a rename, so a running
    # container's bind mount keeps the old file (HAMi #753 rewrote it in place).
    again = plugin.run(["hami-install-hook", "/usr/local/vgpu"], volumes={node: "/usr/local/vgpu"})
    assert again.stdout.count("up to date") == 3, again.stdout
    versioned.write_bytes(b"an older build")
    before = versioned.stat().st_ino
    with versioned.open("rb") as held:  # stands for a running container's bind mount
        third = plugin.run(["hami-install-hook", "/usr/local/vgpu"],
                           volumes={node: "/usr/local/vgpu"})  # fmt: skip
        assert f"installed /usr/local/vgpu/libvgpu.so.{version}" in third.stdout
        assert versioned.stat().st_ino != before
        assert held.read() == b"an older build"
    assert versioned.read_bytes() == (node / "libvgpu.so").read_bytes()


def test_installed_hook_loads_against_the_fake_driver(plugin: Container, tmp_path: Path) -> None:
    """The library the image installs, preloaded into a test program of hook/ against the fake
    libcuda: the 1024 MiB limit is enforced (t_alloc checks it), which only happens if the
    library loaded and intercepted the driver."""
    assert (HOOK_BUILD / "t_alloc").is_file(), "hook/build/release is missing: ./just build-hook"
    node, work = tmp_path / "vgpu", tmp_path / "work"
    node.mkdir()
    work.mkdir()
    tests = tmp_path / "hook-tests"
    shutil.copytree(HOOK_BUILD / "fake", tests / "fake", symlinks=True)
    shutil.copy2(HOOK_BUILD / "t_alloc", tests / "t_alloc")
    volumes = {node: "/usr/local/vgpu", tests: "/hook-tests", work: "/work"}
    assert plugin.run(["hami-install-hook", "/usr/local/vgpu"], volumes=volumes).returncode == 0
    env = {"FAKE_GPU_STATE": "/work/gpu", "CUDA_DEVICE_MEMORY_SHARED_CACHE": "/work/shm",
           "CUDA_DEVICE_MEMORY_LIMIT": "1024m", "EXPECT_LIMIT_MIB": "1024"}  # fmt: skip
    hooked = plugin.run(["/hook-tests/t_alloc", "alloc", "direct"], volumes=volumes,
                        env={**env, "LD_PRELOAD": "/usr/local/vgpu/libvgpu.so"})  # fmt: skip
    assert hooked.returncode == 0, hooked.stdout + hooked.stderr
    assert hooked.stderr == ""
    (work / "gpu").unlink(missing_ok=True)
    (work / "shm").unlink(missing_ok=True)
    bare = plugin.run(["/hook-tests/t_alloc", "alloc", "direct"], volumes=volumes, env=env)
    assert bare.returncode != 0, "without the hook the limit cannot hold: the check is blind"


def test_service_images_are_not_root() -> None:
    for spec in IMAGES:
        if spec.name.startswith("plugin-"):
            continue
        assert spec.user == NONROOT, spec.name


def test_cli_prints_one_size_line_per_image() -> None:
    """``./just images`` on a warm cache: builds nothing, one ``image_<name>_mb=`` line each."""
    done = subprocess.run([sys.executable, "-m", "hami_images"], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("=")[0] for line in lines] == [
        f"image_{spec.name.replace('-', '_')}_mb" for spec in IMAGES]  # fmt: skip
    for line in lines:
        assert re.fullmatch(r"image_\w+_mb=\d+\.\d MB", line), line
    assert done.stderr.count("(cached)") == len(IMAGES)
