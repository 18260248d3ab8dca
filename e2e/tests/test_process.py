"""Teardown leaves no process behind: not the component, not what it forked, not on SIGTERM."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hami_e2e.process import ManagedProcess, ProcessError, ProcessIdentity, kill_group


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def wait_file(path: Path, within: float = 10.0) -> str:
    deadline = time.monotonic() + within
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return path.read_text().strip()


def forking_script(pidfile: Path) -> list[str]:
    # The component forks a grandchild that ignores SIGTERM: only the group SIGKILL ends it.
    return ["sh", "-c", f"(trap '' TERM; sleep 300) & echo $! > {pidfile}; wait"]


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    proc = ManagedProcess("forker", forking_script(tmp_path / "child"), tmp_path / "forker.log")
    proc.start()
    child = int(wait_file(tmp_path / "child"))
    assert proc.pid is not None
    assert alive(proc.pid)
    assert alive(child)
    proc.stop(timeout=1)
    time.sleep(0.1)
    assert not alive(proc.pid)
    assert not alive(child)


def test_check_reports_exit_code_and_log_tail(tmp_path: Path) -> None:
    proc = ManagedProcess("dies", ["sh", "-c", "echo boom-line; exit 3"], tmp_path / "dies.log")
    proc.start()
    assert proc.proc is not None
    proc.proc.wait(5)
    with pytest.raises(ProcessError, match=r"dies exited with code 3(.|\n)*boom-line"):
        proc.check()


def test_sigterm_to_the_harness_stops_its_components(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from hami_e2e.process import ManagedProcess
        argv = {forking_script(tmp_path / "child")!r}
        p = ManagedProcess("c", argv, Path({str(tmp_path)!r}) / "c.log")
        p.start()
        Path({str(tmp_path / "leader")!r}).write_text(str(p.pid))
        time.sleep(300)
        """
    )
    harness = subprocess.Popen([sys.executable, "-c", script])
    leader = int(wait_file(tmp_path / "leader"))
    child = int(wait_file(tmp_path / "child"))
    harness.send_signal(signal.SIGTERM)
    assert harness.wait(30) == -signal.SIGTERM
    time.sleep(0.2)
    assert not alive(leader)
    assert not alive(child)


def test_kill_group_of_a_detached_component(tmp_path: Path) -> None:
    proc = subprocess.Popen(forking_script(tmp_path / "child"), start_new_session=True)
    child = int(wait_file(tmp_path / "child"))
    identity = ProcessIdentity.of(proc.pid)
    assert identity is not None
    assert kill_group(identity, grace=0.5)
    proc.wait(5)
    time.sleep(0.1)
    assert not alive(child)


def test_kill_group_never_signals_a_process_that_only_shares_the_pid(tmp_path: Path) -> None:
    """A pid recorded earlier may now belong to another program: a different start time (the
    pid was reused) or another boot (a reboot) means it is not ours."""
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        real = ProcessIdentity.of(bystander.pid)
        assert real is not None
        reused = dataclasses.replace(real, start_ticks=real.start_ticks - 1)
        rebooted = dataclasses.replace(real, boot_id="00000000-0000-0000-0000-000000000000")
        assert not kill_group(reused, grace=0.2)
        assert not kill_group(rebooted, grace=0.2)
        time.sleep(0.1)
        assert alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait(5)


def _cluster_down(workdir: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "hami_e2e.cli", "down", "--workdir", str(workdir)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_cluster_down_leaves_an_unrelated_process_recorded_in_a_stale_state_alone(
    tmp_path: Path,
) -> None:
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        real = ProcessIdentity.of(bystander.pid)
        assert real is not None
        state = tmp_path / "state.json"
        # The format before identities were recorded: a bare process group id.
        state.write_text(json.dumps({"process_groups": {"etcd": bystander.pid}}))
        old = _cluster_down(tmp_path)
        assert old.returncode == 1
        assert "nothing was signalled" in old.stderr
        stale = dataclasses.replace(real, start_ticks=real.start_ticks + 7).as_dict()
        state.write_text(json.dumps({"processes": {"etcd": stale}}))
        done = _cluster_down(tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"etcd (pid {bystander.pid}) had already exited" in done.stdout
        assert not state.exists()
        time.sleep(0.1)
        assert alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait(5)


def test_cluster_down_stops_the_processes_it_recorded(tmp_path: Path) -> None:
    proc = subprocess.Popen(forking_script(tmp_path / "child"), start_new_session=True)
    child = int(wait_file(tmp_path / "child"))
    identity = ProcessIdentity.of(proc.pid)
    assert identity is not None
    (tmp_path / "state.json").write_text(json.dumps({"processes": {"etcd": identity.as_dict()}}))
    done = _cluster_down(tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"stopped etcd (process group {proc.pid})" in done.stdout
    proc.wait(5)
    time.sleep(0.1)
    assert not alive(child)


def test_sigkill_of_the_harness_still_takes_its_components_down(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from hami_e2e.process import ManagedProcess
        p = ManagedProcess("c", ["sleep", "300"], Path({str(tmp_path)!r}) / "c.log")
        p.start()
        Path({str(tmp_path / "leader")!r}).write_text(str(p.pid))
        time.sleep(300)
        """
    )
    harness = subprocess.Popen([sys.executable, "-c", script])
    leader = int(wait_file(tmp_path / "leader"))
    assert alive(leader)
    harness.kill()  # no handler runs: only the kernel's parent-death signal can help
    harness.wait(10)
    deadline = time.monotonic() + 5
    while alive(leader) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(leader)


def test_a_component_started_from_a_worker_thread_outlives_that_thread(tmp_path: Path) -> None:
    proc = ManagedProcess("t", ["sleep", "300"], tmp_path / "t.log")
    worker = threading.Thread(target=proc.start)
    worker.start()
    worker.join()
    time.sleep(0.5)  # a parent-death signal tied to the worker would have fired by now
    try:
        assert proc.running()
    finally:
        proc.stop(timeout=1)
    assert not proc.running()
