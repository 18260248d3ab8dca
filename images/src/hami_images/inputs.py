"""What an image is made of, read from the checkout: the workspace packages it holds, their
locked dependencies (uv.lock, through ``uv export``), and the content of every source file, so
that an image is rebuilt exactly when one of its inputs changes."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterable
from pathlib import Path

from hami_images.buildah import ImageError

# Parts of a package folder that never reach its wheel.
SKIPPED_PARTS = frozenset({"tests", "benches", "examples", "target", "build", "__pycache__"})


def repo_root() -> Path:
    """The checkout this package is installed from (the workspace installs it editable)."""
    return Path(__file__).resolve().parents[3]


def uv_binary(root: Path) -> str:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(root / ".tools/bin/uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise ImageError("uv is not found: run ./just build first (it installs uv into .tools/)")


def uv(root: Path, *args: str) -> str:
    proc = subprocess.run([uv_binary(root), *args], cwd=root, capture_output=True, text=True,
                          check=False, timeout=900)  # fmt: skip
    if proc.returncode != 0:
        raise ImageError(f"uv {' '.join(args[:2])} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def locked_requirements(root: Path, package: str) -> str:
    """The package's third-party dependencies, pinned with their hashes from uv.lock."""
    return uv(
        root, "export", "--frozen", "--no-dev", "--package", package, "--format",
        "requirements-txt", "--no-header", "--no-annotate", "--no-emit-workspace",
    )  # fmt: skip


def workspace_members(root: Path, package: str) -> list[Path]:
    """The workspace folders the package needs (itself included), from the lock file."""
    listed = uv(root, "export", "--frozen", "--no-dev", "--package", package, "--format",
                "requirements-txt", "--no-header", "--no-annotate", "--no-hashes")  # fmt: skip
    members = [root / line.split(maxsplit=1)[1].strip().removeprefix("./")
               for line in listed.splitlines() if line.startswith("-e ./")]  # fmt: skip
    if not members:
        raise ImageError(f"{package} is not a workspace package of {root}")
    return sorted(members)


def package_name(folder: Path) -> str:
    return str(tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"])


def package_version(root: Path, package: str) -> str:
    for folder in workspace_members(root, package):
        data = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        if data["name"] == package:
            return str(data["version"])
    raise ImageError(f"{package}: no pyproject.toml names it")


def source_files(root: Path, folder: Path) -> list[Path]:
    """Every file of ``folder`` that git tracks or would track (ignored build outputs left
    out), without tests, benchmarks and docs: what a wheel of it is built from."""
    rel = folder.relative_to(root)
    proc = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", str(rel)],
        cwd=root, capture_output=True, check=False,
    )  # fmt: skip
    if proc.returncode == 0:
        names = [root / n for n in proc.stdout.decode().split("\0") if n]
    else:  # not a git checkout: every file but the usual build outputs
        names = [p for p in folder.rglob("*") if p.is_file()]
    return sorted(
        p for p in names
        if p.is_file() and p.suffix != ".md"
        and not SKIPPED_PARTS.intersection(p.relative_to(folder).parts[:-1])
    )  # fmt: skip


def digest(root: Path, files: Iterable[Path], *texts: str) -> str:
    """sha256 over each file's path, executable bit and content, then the given texts."""
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(b"x" if os.access(path, os.X_OK) else b"-")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    for text in texts:
        h.update(b"\0" + text.encode())
    return h.hexdigest()
