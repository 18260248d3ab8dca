"""The base root filesystem: Debian's minbase with the base packages, made by debootstrap from
a Debian mirror (no container registry is needed), slimmed, and cached as a tarball keyed by
the release and the package list.

``$HAMI_CACHE/images/base/<key>/rootfs.tar`` holds it once ``complete.json`` is there; a build
that fails leaves only a ``.partial`` folder, which the next build starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from hami_images.buildah import ImageError, require_tool
from hami_images.catalog import BUILD_REV, NONROOT, BaseSpec

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


def base_key(spec: BaseSpec) -> str:
    """What the base is made of; the mirror is not part of it (every mirror serves the same
    release)."""
    what = {"release": spec.release, "variant": "minbase", "packages": sorted(spec.packages),
            "rev": BUILD_REV}  # fmt: skip
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def find_mirror(sources: tuple[Path, ...] = SOURCES, environ: dict[str, str] | None = None) -> str:
    """``HAMI_DEBIAN_MIRROR``, else the first Debian archive apt is configured with (one-line
    ``deb URI suite`` or deb822 ``URIs:``; security archives skipped), else deb.debian.org."""
    env = os.environ if environ is None else environ
    if env.get("HAMI_DEBIAN_MIRROR"):
        return env["HAMI_DEBIAN_MIRROR"].rstrip("/")
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files += sorted(p for p in source.iterdir() if p.suffix in (".list", ".sources"))
        elif source.is_file():
            files.append(source)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        uris: list[str] = re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.MULTILINE)
        for line in re.findall(r"^URIs:\s*(.+)$", text, re.MULTILINE):
            uris += str(line).split()
        for uri in uris:
            if uri.rstrip("/").endswith("/debian") and uri.startswith(("http://", "https://")):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def slim(root: Path) -> None:
    """Removes what a running service never reads (package lists and caches, docs but their
    copyright files, man pages, locales, logs, device nodes, the build host's name and resolver)
    and adds the ``nonroot`` user (uid and gid 65532) that the service images run as."""
    for folder in ("var/cache/apt", "var/lib/apt/lists", "usr/share/man", "usr/share/info",
                   "usr/share/locale", "var/log", "dev", "tmp", "var/tmp"):  # fmt: skip
        _empty(root / folder)
    docs = root / "usr/share/doc"
    if docs.is_dir():
        for path in sorted(docs.rglob("*"), reverse=True):
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    path.rmdir()
            elif path.name != "copyright":
                path.unlink()
    for stale in (*root.glob("var/cache/debconf/*-old"), *root.glob("var/lib/dpkg/*-old")):
        stale.unlink()
    (root / "etc/hostname").write_text("localhost\n")
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("")  # the container runtime mounts the cluster's
    _add_nonroot(root)


def _empty(folder: Path) -> None:
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _add_nonroot(root: Path) -> None:
    passwd, group = root / "etc/passwd", root / "etc/group"
    if f":{NONROOT}:" not in passwd.read_text():
        with passwd.open("a") as fh:
            fh.write(f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/usr/sbin/nologin\n")
    if f":{NONROOT}:" not in group.read_text():
        with group.open("a") as fh:
            fh.write(f"nonroot:x:{NONROOT}:\n")
    home = root / "home/nonroot"
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, NONROOT, NONROOT)


class BaseRootfs:
    """The cached tarball of one `BaseSpec`."""

    def __init__(self, cache: Path, spec: BaseSpec) -> None:
        self.spec = spec
        self.key = base_key(spec)
        self.folder = cache / "base" / self.key
        self.tarball = self.folder / "rootfs.tar"
        self.marker = self.folder / "complete.json"

    def is_complete(self) -> bool:
        return self.marker.is_file() and self.tarball.is_file()

    def ensure(self, say: Callable[[str], None]) -> Path:
        """The tarball, made now when it is not cached (about a minute; needs root)."""
        if self.is_complete():
            return self.tarball
        if os.geteuid() != 0:
            raise ImageError("debootstrap needs root to make the base root filesystem")
        require_tool("debootstrap")
        partial = self.folder.with_name(self.folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        root = partial / "rootfs"
        root.mkdir(parents=True)
        mirror = find_mirror()
        start = time.monotonic()
        say(f"base: debootstrap {self.spec.release} minbase + {' '.join(self.spec.packages)} "
            f"from {mirror}")  # fmt: skip
        log = partial / "debootstrap.log"
        with log.open("w") as sink:
            proc = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(self.spec.packages)}",
                 self.spec.release, str(root), mirror],
                stdout=sink, stderr=subprocess.STDOUT, check=False, timeout=1800,
            )  # fmt: skip
        if proc.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-20:])
            raise ImageError(f"debootstrap failed (exit {proc.returncode}); log {log}:\n{tail}")
        slim(root)
        staged = partial / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "--sort=name", "-C", str(root), "-cf",
                        str(staged), "."], check=True)  # fmt: skip
        shutil.rmtree(root)
        (partial / "complete.json").write_text(json.dumps({
            "release": self.spec.release, "packages": list(self.spec.packages), "mirror": mirror,
            "seconds": round(time.monotonic() - start, 1),
        }, indent=2) + "\n")  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)
        partial.rename(self.folder)
        say(f"base: done in {time.monotonic() - start:.0f}s")
        return self.tarball
