"""The Go side of the cached builds: toolchain checks, logged `go` commands with progress, and
the lock that serialises builds of one cache folder (used by `hami_e2e.build`)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

MIN_GO = (1, 26)


class BuildError(RuntimeError):
    """A step of the build failed; the message says which and shows the tail of its log."""


def read_versions(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise BuildError(f"{path}: line {raw!r} is not NAME=VALUE")
        values[name.strip()] = value.strip()
    return values


def say(msg: str) -> None:
    print(f"[build-cluster {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CGO_ENABLED="0",
        GOTOOLCHAIN="local",
        GOFLAGS="-trimpath -buildvcs=false -mod=readonly",
    )
    return env


def check_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError("`go` is not on PATH: install Go >= 1.26 (https://go.dev/dl/)")
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True)
    version = out.stdout.strip()
    parts = version.removeprefix("go").split(".")
    try:
        found = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        raise BuildError(f"cannot parse the Go version {version!r}") from None
    if found < MIN_GO:
        raise BuildError(f"Go {version} is too old: the pinned modules need go >= 1.26")
    return version


def count_packages(cwd: Path, extra: Sequence[str], pkgs: Sequence[str]) -> int | None:
    """How many packages the build graph has (for progress), or None if go cannot tell."""
    out = subprocess.run(
        ["go", "list", "-deps", *extra, *pkgs],
        cwd=cwd,
        env=go_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return len(out.stdout.split()) if out.returncode == 0 else None


def run_logged(
    cmd: Sequence[str], cwd: Path, log: Path, what: str, total: int | None = None
) -> None:
    """Run a go command, write its output to `log`, and print progress while it runs.

    With `go build -v` each output line is one package compiled (cached ones are not printed).
    """
    start = time.monotonic()
    packages = 0
    of = f" of {total} in the graph" if total else ""
    last = start
    with log.open("a") as sink:
        sink.write(f"$ {' '.join(cmd)}\n")
        sink.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in proc.stdout or ():
            sink.write(line)
            packages += 1
            now = time.monotonic()
            if now - last >= 30:
                say(f"  {what}: {packages} packages compiled{of}, {now - start:.0f}s")
                last = now
        rc = proc.wait()
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-40:])
        raise BuildError(f"{what} failed (exit {rc}); full log: {log}\n{tail}")
    say(f"  {what}: done in {time.monotonic() - start:.0f}s")


@contextmanager
def lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another build holds {path}; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
