"""Child processes of the harness: own process group, own log file, guaranteed teardown.

Each component runs in a new session (so a process group of its own that also holds anything
it forks). `stop()` sends SIGTERM to the whole group, waits, then SIGKILLs it. Every started
process is recorded in a registry that `atexit` and SIGTERM/SIGHUP handlers drain, so an
interrupted test run (Ctrl-C, a killed pytest, a timeout) leaves nothing behind. Against
SIGKILL, which runs no handler, each component also asks the kernel to kill it when its parent
dies (Linux ``PR_SET_PDEATHSIG``); `cluster-up` turns that off for the processes it leaves running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

_REGISTRY: dict[int, ManagedProcess] = {}
_REGISTRY_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


_SETPRIV = shutil.which("setpriv")


def _tied_to_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that the kernel SIGKILLs it when the thread that started it exits.

    util-linux's ``setpriv --pdeathsig`` sets the parent-death signal and execs the command; the
    signal survives the exec. This replaces a ``preexec_fn``: Python code between fork and exec
    can deadlock in a multithreaded process (a lock held by another thread at fork time, gRPC's
    fork handlers), which hung process starts after gRPC had been used in the same process.
    """
    if _SETPRIV is None:
        return argv
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]


class ProcessError(RuntimeError):
    """A component exited or never became ready; the message holds its log tail."""


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "".join(text.splitlines(keepends=True)[-lines:])


class ManagedProcess:
    """One long-running component writing stdout and stderr to ``log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.name = name
        self.die_with_parent = die_with_parent
        self.argv = list(argv)
        self.log = log
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        _install_handlers()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as sink:
            sink.write(f"$ {' '.join(self.argv)}\n".encode())
            sink.flush()
            argv = _tied_to_parent(self.argv) if self._tie_to_parent() else self.argv
            self.proc = subprocess.Popen(
                argv,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        with _REGISTRY_LOCK:
            _REGISTRY[self.proc.pid] = self

    def _tie_to_parent(self) -> bool:
        # The kernel sends the parent-death signal when the *thread* that forked the child
        # exits; only the main thread lives as long as the process, so a component started from
        # a worker thread (asyncio.to_thread, a pool) relies on the registry alone.
        return self.die_with_parent and threading.current_thread() is threading.main_thread()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise `ProcessError` with the log tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessError(
                f"{self.name} exited with code {self.proc.returncode}; "
                f"last lines of {self.log}:\n{tail(self.log)}"
            )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, wait up to ``timeout``, then SIGKILL it."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # the session leader's pid is the group id
        _signal_group(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            self.proc.wait(5)
        # Anything the component forked that outlived it is still in the group.
        _signal_group(pgid, signal.SIGKILL)
        with _REGISTRY_LOCK:
            _REGISTRY.pop(pgid, None)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class ProcessIdentity:
    """Who a process is, beyond its pid (which the kernel reuses): its start time in clock ticks
    after boot (``/proc/<pid>/stat`` field 22) and the boot it started in. A pid recorded by an
    earlier `cluster-up` names the same process only while both still match: after a reboot or
    once the process has exited and its pid went to another, they do not."""

    pid: int
    start_ticks: int
    boot_id: str

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of the running process ``pid``, or None when there is none."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            boot_id = _BOOT_ID.read_text().strip()
        except OSError:
            return None
        # The command name (field 2) may hold spaces and parentheses: split after its last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":  # a zombie has exited; only its parent's wait is left
            return None
        return cls(pid, int(fields[19]), boot_id)

    def as_dict(self) -> dict[str, int | str]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "boot_id": self.boot_id}

    @classmethod
    def from_dict(cls, data: object) -> ProcessIdentity | None:
        """The identity a state file recorded, or None when it is not one (an older format)."""
        if not isinstance(data, dict):
            return None
        pid, ticks, boot = data.get("pid"), data.get("start_ticks"), data.get("boot_id")
        if isinstance(pid, int) and isinstance(ticks, int) and isinstance(boot, str):
            return cls(pid, ticks, boot)
        return None

    def is_running(self) -> bool:
        """Whether this very process still runs (not merely some process with its pid)."""
        return ProcessIdentity.of(self.pid) == self


_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def detach(proc: ManagedProcess) -> None:
    """Let ``proc`` outlive this interpreter (`cluster-up`): drop it from the cleanup registry."""
    if proc.pid is not None:
        with _REGISTRY_LOCK:
            _REGISTRY.pop(proc.pid, None)


def kill_group(leader: ProcessIdentity, grace: float = 5.0) -> bool:
    """Terminate the process group of a component started elsewhere (`cluster-down`): TERM,
    wait, KILL. Only while its leader is provably the process that was started (`leader` still
    matches): a recorded pid that the kernel has since given to another process, or that is from
    an earlier boot, is never signalled. Returns whether the group was signalled."""
    if not leader.is_running():
        return False
    pgid = leader.pid  # each component leads its own session, so its pid is the group id
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not leader.is_running():
            break
        time.sleep(0.1)
    # Whatever the leader forked may still be in its group: members that started after the
    # leader did are its descendants (a group id is not reused while a member lives).
    if leader.is_running() or _group_members_since(leader):
        _signal_group(pgid, signal.SIGKILL)
    return True


def _group_members_since(leader: ProcessIdentity) -> list[int]:
    """Processes in ``leader``'s process group that started no earlier than it (this boot)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == leader.pid and int(fields[19]) >= leader.start_ticks:
            members.append(int(entry.name))
    return members


def stop_all() -> None:
    """Stop every process this interpreter started and has not stopped yet (newest first)."""
    with _REGISTRY_LOCK:
        procs = list(_REGISTRY.values())
    for proc in reversed(procs):
        with contextlib.suppress(Exception):
            proc.stop(timeout=5.0)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    stop_all()
    # Re-raise with the default action so the exit status still says "killed by signal".
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _HANDLERS_INSTALLED  # noqa: PLW0603 - install once per interpreter
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)
