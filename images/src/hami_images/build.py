"""Build each image of the catalog, or take it from the cache when none of its inputs changed.

An image's key is a sha256 over: the build revision, the base's key, `images/Containerfile` and
the entrypoint, its `ImageSpec`, its locked third-party requirements (with their hashes), every
source file of the workspace packages it holds, its extra files, and, for an image carrying the
hook, the hook's sources. ``$HAMI_CACHE/images/oci/<name>-<key16>.oci.tar`` (the OCI archive)
and ``<name>.json`` (its key and sizes) are the products; buildah's own storage, under
``$HAMI_CACHE/images/containers``, keeps the last build of each image for the tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from hami_images.buildah import Buildah, ImageError
from hami_images.catalog import BUILD_REV, HOOK_DIR, PRUNED, BaseSpec, ImageSpec
from hami_images.inputs import (
    digest,
    locked_requirements,
    package_name,
    package_version,
    source_files,
    uv,
    workspace_members,
)
from hami_images.rootfs import BaseRootfs

Say = Callable[[str], None]
CONTAINERFILE = "images/Containerfile"
ENTRYPOINT = "images/entrypoint.sh"
HOOK_INPUTS = ("hook/src", "hook/build.sh", "hook/scripts")


def say_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def image_source(root: Path, environ: dict[str, str]) -> str:
    """The ``org.opencontainers.image.source`` label: ``HAMI_IMAGE_SOURCE``, else the
    checkout's ``origin`` remote."""
    if environ.get("HAMI_IMAGE_SOURCE"):
        return environ["HAMI_IMAGE_SOURCE"]
    proc = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=root,
                          capture_output=True, text=True, check=False)  # fmt: skip
    url = proc.stdout.strip()
    return url or "local checkout without a remote (set HAMI_IMAGE_SOURCE to its URL)"


@dataclass(frozen=True)
class Built:
    name: str
    key: str
    ref: str  # the image in buildah's storage
    archive: str  # the OCI archive
    reference: str  # the name the archive carries (what a node's runtime imports it as)
    version: str
    size_bytes: int  # unpacked, as a node stores it
    archive_bytes: int  # the archive (compressed layers), as a registry stores it
    seconds: float
    cached: bool = False

    @property
    def size_line(self) -> str:
        return f"image_{self.name.replace('-', '_')}_mb={self.size_bytes / 1e6:.1f} MB"


class ImageCache:
    """The folders of ``$HAMI_CACHE/images``."""

    def __init__(self, cache: Path) -> None:
        self.root = cache / "images"
        self.buildah = Buildah(self.root / "containers")
        self.archives = self.root / "oci"
        self.stage = self.root / "stage"

    def record(self, name: str) -> Path:
        return self.archives / f"{name}.json"

    def load(self, name: str) -> Built | None:
        path = self.record(name)
        if not path.is_file():
            return None
        return Built(**json.loads(path.read_text()))

    @contextlib.contextmanager
    def lock(self, say: Say) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say(f"another image build holds {self.root / '.lock'}; waiting for it")
                fcntl.flock(fh, fcntl.LOCK_EX)
            yield


class Builder:
    def __init__(self, root: Path, cache: Path, environ: dict[str, str], say: Say) -> None:
        self.root = root
        self.cache = ImageCache(cache)
        self.hami_cache = cache
        self.base = BaseRootfs(self.cache.root, BaseSpec())
        self.source = image_source(root, environ)
        self.say = say

    # -- keys ---------------------------------------------------------------------------------

    def inputs(self, spec: ImageSpec) -> tuple[list[Path], str]:
        """The files and the texts an image's key is computed from."""
        files = [self.root / CONTAINERFILE, self.root / ENTRYPOINT]
        for member in workspace_members(self.root, spec.package):
            files += source_files(self.root, member)
        files += [self.root / f.source for f in spec.files]
        if spec.hook:
            for name in HOOK_INPUTS:
                path = self.root / name
                files += source_files(self.root, path) if path.is_dir() else [path]
        texts = json.dumps({"rev": BUILD_REV, "base": self.base.key, "spec": asdict(spec),
                            "source": self.source, "pruned": PRUNED}, sort_keys=True)  # fmt: skip
        return files, texts + locked_requirements(self.root, spec.package)

    def key(self, spec: ImageSpec) -> str:
        files, texts = self.inputs(spec)
        return digest(self.root, files, texts)

    def current(self, spec: ImageSpec) -> Built | None:
        """The cached build of the image's current inputs, if there is one."""
        built = self.cache.load(spec.name)
        if built is None or built.key != self.key(spec) or not Path(built.archive).is_file():
            return None
        return built

    # -- builds -------------------------------------------------------------------------------

    def ensure(self, spec: ImageSpec) -> Built:
        with self.cache.lock(self.say):
            built = self.current(spec)
            if built is not None:
                return Built(**{**asdict(built), "cached": True})
            return self._build(spec, self.key(spec))

    def in_storage(self, built: Built) -> str:
        """The built image in buildah's storage (read back from its archive when the storage
        lost it), for the tests to run."""
        if not self.cache.buildah.has(built.ref):
            self.cache.buildah.run("pull", "--quiet", f"oci-archive:{built.archive}")
            self.cache.buildah.run("tag", built.reference, built.ref)
        return built.ref

    def base_ref(self) -> str:
        ref = f"localhost/hami-rs/base:{self.base.key}"
        if not self.cache.buildah.has(ref):
            tarball = self.base.ensure(self.say)
            b = self.cache.buildah
            cid = b.run("from", "scratch").stdout.strip().splitlines()[-1]
            try:
                b.run("add", cid, str(tarball), "/")
                b.run("commit", "--quiet", cid, ref)
            finally:
                b.run("rm", cid, check=False)
        return ref

    def _build(self, spec: ImageSpec, key: str) -> Built:
        start = time.monotonic()
        self.say(f"{spec.name}: building (inputs {key[:16]})")
        base = self.base_ref()
        stage = self.cache.stage / spec.name
        shutil.rmtree(stage, ignore_errors=True)
        (stage / "files").mkdir(parents=True)
        version = package_version(self.root, spec.package)
        self._site_packages(spec, stage)
        self._files(spec, stage, version)
        ref = f"localhost/{spec.repository}:{key[:16]}"
        b = self.cache.buildah
        args = {"BASE": base, "NAME": spec.repository, "VERSION": version, "MODULE": spec.module,
                "USER_ID": str(spec.user), "DESCRIPTION": spec.description,
                "SOURCE": self.source, "INPUTS": key}  # fmt: skip
        build_args = [a for k, v in args.items() for a in ("--build-arg", f"{k}={v}")]
        b.run("bud", "--isolation", "chroot", "--pull=never", "--quiet", *build_args, "-f",
              str(self.root / CONTAINERFILE), "-t", ref, str(stage))  # fmt: skip
        self.cache.archives.mkdir(parents=True, exist_ok=True)
        archive = self.cache.archives / f"{spec.name}-{key[:16]}.oci.tar"
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        reference = f"docker.io/{spec.repository}:{version}"
        b.run("push", "--quiet", "--format", "oci", ref, f"oci-archive:{partial}:{reference}")
        partial.rename(archive)
        for old in self.cache.archives.glob(f"{spec.name}-*.oci.tar"):
            if old != archive:
                old.unlink()
        for entry in b.images():
            for name in entry.get("names") or []:
                if name.startswith(f"localhost/{spec.repository}:") and name != ref:
                    b.remove_image(name)
        shutil.rmtree(stage, ignore_errors=True)
        built = Built(
            name=spec.name, key=key, ref=ref, archive=str(archive), reference=reference,
            version=version, size_bytes=b.size_bytes(ref), archive_bytes=archive.stat().st_size,
            seconds=round(time.monotonic() - start, 1),
        )  # fmt: skip
        self.cache.record(spec.name).write_text(json.dumps(asdict(built), indent=2) + "\n")
        self.say(f"{spec.name}: built in {built.seconds:.0f}s")
        return built

    def _site_packages(self, spec: ImageSpec, stage: Path) -> None:
        """The package and its locked dependencies, installed for the image's Python into
        ``stage/site`` (copied to its site-packages): no pip and no cache in the image."""
        site, wheels = stage / "site", stage / "wheels"
        requirements = stage / "requirements.txt"
        requirements.write_text(locked_requirements(self.root, spec.package))
        target = ["--target", str(site), "--python", sys.executable, "--quiet"]
        uv(self.root, "pip", "install", *target, "--require-hashes", "--no-deps", "-r",
           str(requirements))  # fmt: skip
        for member in workspace_members(self.root, spec.package):
            uv(self.root, "build", "--wheel", "--quiet", "--package", package_name(member),
               "--out-dir", str(wheels))  # fmt: skip
        uv(
            self.root,
            "pip",
            "install",
            *target,
            "--no-deps",
            *map(str, sorted(wheels.glob("*.whl"))),
        )
        shutil.rmtree(site / "bin", ignore_errors=True)  # scripts with this host's shebang
        for path, _why in PRUNED:
            shutil.rmtree(site / path, ignore_errors=True)
        for cached in sorted(site.rglob("__pycache__")):
            shutil.rmtree(cached)

    def _files(self, spec: ImageSpec, stage: Path, version: str) -> None:
        files = stage / "files"
        entry = files / "usr/local/bin/hami-entrypoint"
        entry.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / ENTRYPOINT, entry)
        entry.chmod(0o755)
        for extra in spec.files:
            dest = files / extra.dest.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / extra.source, dest)
            dest.chmod(extra.mode)
        if spec.hook:
            library = self._hook_library()
            dest = files / HOOK_DIR.lstrip("/")
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(library, dest / "libvgpu.so")
            (dest / "libvgpu.so").chmod(0o755)
            (dest / "VERSION").write_text(version + "\n")

    def _hook_library(self) -> Path:
        """libvgpu.so, release build, compiled from this checkout's hook sources."""
        headers = self.hami_cache / "hook-headers"
        out = self.cache.stage / "hook"
        shutil.rmtree(out, ignore_errors=True)
        for argv in (["hook/scripts/fetch_headers.sh", str(headers)],
                     ["hook/build.sh", str(out), "release", str(headers)]):  # fmt: skip
            proc = subprocess.run(argv, cwd=self.root, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise ImageError(f"{' '.join(argv[:1])} failed: {proc.stderr[-2000:]}")
        return out / "libvgpu.so"
