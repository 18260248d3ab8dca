"""buildah, as the builds and the tests use it: chroot isolation (no OCI runtime, no daemon), the
vfs storage driver (no overlay mounts), and a storage folder of our own under the cache, so
nothing touches the machine's /var/lib/containers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ImageError(RuntimeError):
    """A build step failed; the message names the step and what to do."""


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ImageError(
            f"{name} is not installed: run ./just images (it installs buildah and debootstrap "
            "from Debian's packages), or apt-get install -y --no-install-recommends "
            "buildah debootstrap"
        )
    return path


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Buildah:
    """One buildah storage (``root``, ``runroot``)."""

    storage: Path

    def argv(self, *args: str) -> list[str]:
        return [
            require_tool("buildah"),
            "--root", str(self.storage / "root"),
            "--runroot", str(self.storage / "run"),
            "--storage-driver", "vfs",
            *args,
        ]  # fmt: skip

    def run(self, *args: str, check: bool = True, timeout: float = 1800) -> Completed:
        env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
        proc = subprocess.run(
            self.argv(*args), capture_output=True, text=True, timeout=timeout, env=env,
            check=False,
        )  # fmt: skip
        done = Completed(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-30:])
            raise ImageError(f"buildah {args[0]} failed (exit {proc.returncode}):\n{tail}")
        return done

    def images(self) -> list[dict[str, Any]]:
        out = self.run("images", "--json").stdout.strip()
        listed = json.loads(out) if out else []
        return listed if isinstance(listed, list) else []

    def image(self, ref: str) -> dict[str, Any] | None:
        """The ``buildah images`` entry named ``ref`` (``localhost/`` prefixed), or None."""
        wanted = ref if ref.startswith("localhost/") else f"localhost/{ref}"
        for entry in self.images():
            if wanted in (entry.get("names") or []):
                return entry
        return None

    def has(self, ref: str) -> bool:
        return self.image(ref) is not None

    def size_bytes(self, ref: str) -> int:
        """The image unpacked: the sum of its layers as the storage holds them (tar, not
        compressed)."""
        data = json.loads(self.run("inspect", "--type", "image", ref).stdout)
        manifest = json.loads(data["Manifest"])
        return sum(int(layer["size"]) for layer in manifest["layers"])

    def inspect(self, ref: str) -> dict[str, Any]:
        """The image's OCI configuration (``config``: Entrypoint, User, Env, Labels...)."""
        data = json.loads(self.run("inspect", "--type", "image", ref).stdout)
        return dict(data["OCIv1"])

    def remove_image(self, ref: str) -> None:
        self.run("rmi", "--force", ref, check=False)

    @contextlib.contextmanager
    def container(self, ref: str) -> Iterator[Container]:
        """A working container of the image, removed on exit."""
        cid = self.run("from", "--pull=never", "--quiet", ref).stdout.strip().splitlines()[-1]
        try:
            yield Container(self, cid)
        finally:
            self.run("rm", cid, check=False)


@dataclass(frozen=True)
class Container:
    buildah: Buildah
    cid: str

    def run(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        volumes: Mapping[Path, str] | None = None,
        timeout: float = 120,
    ) -> Completed:
        """Runs ``argv`` in the container (as the image's user unless ``user`` is given);
        ``volumes`` bind-mounts host folders (host path -> container path)."""
        args = ["run", "--isolation", "chroot"]
        if user is not None:
            args += ["--user", user]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        for host, inside in (volumes or {}).items():
            args += ["--volume", f"{host}:{inside}"]
        return self.buildah.run(*args, self.cid, "--", *argv, check=False, timeout=timeout)
