"""`./just cluster-up` / `./just cluster-down`: a control plane for people, left running.

``up`` starts the local cluster in ``<repo>/.cache/cluster`` (or ``--workdir``), detaches its
processes (each in its own process group), records who each one is in ``state.json`` (its pid,
start time and boot, see `ProcessIdentity`) and prints how to point kubectl at it and where the
traces are (Jaeger's query API and UI, and the OTLP endpoint to export to). ``down`` stops every
recorded process group whose leader is still provably that process, and removes the state: a
stale state file (after a reboot, or a process that already exited and whose pid went to another
program) never gets an unrelated process signalled.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from hami_e2e.build import layout
from hami_e2e.cluster import ClusterError, LocalCluster
from hami_e2e.paths import repo_root
from hami_e2e.process import ProcessError, ProcessIdentity, detach, kill_group


def _state(workdir: Path) -> Path:
    return workdir / "state.json"


def up(workdir: Path) -> int:
    if _state(workdir).exists():
        print(
            f"a cluster is already recorded in {_state(workdir)}; run `./just cluster-down` first"
        )
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    cluster = LocalCluster(workdir, detachable=True)
    try:
        cluster.start()
    except (ClusterError, ProcessError) as exc:
        print(f"cluster-up failed: {exc}", file=sys.stderr)
        return 1
    recorded: dict[str, dict[str, int | str]] = {}
    for proc in cluster.processes:
        identity = ProcessIdentity.of(proc.pid) if proc.pid is not None else None
        if identity is not None:
            recorded[proc.name] = identity.as_dict()
        detach(proc)
    _state(workdir).write_text(json.dumps({"processes": recorded}, indent=2) + "\n")
    kubectl = layout().binary("kubectl")
    print(f"cluster is up in {cluster.start_seconds:.1f}s; logs in {cluster.logs}")
    print("point kubectl at it:")
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    print(f"  alias kubectl={kubectl}")
    print("  kubectl get nodes,pods -A")
    if cluster.jaeger is not None:
        print(f"traces (Jaeger): {cluster.jaeger.query_url}")
        print(f"  export OTEL_EXPORTER_OTLP_ENDPOINT={cluster.jaeger.otlp_endpoint}")
        print(f"  a pod's trace: {cluster.jaeger.query_url}/api/v3/traces/<trace id>")
    print("stop it with: ./just cluster-down")
    return 0


def down(workdir: Path) -> int:
    state = _state(workdir)
    if not state.exists():
        print(f"no cluster recorded in {state}")
        return 0
    try:
        recorded = json.loads(state.read_text()).get("processes")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if not isinstance(recorded, dict):
        print(f"{state} records no process identities (written by an older version, or damaged): "
              "nothing was signalled; stop the cluster's processes by hand, then remove it",
              file=sys.stderr)  # fmt: skip
        return 1
    for name, data in reversed(list(recorded.items())):
        identity = ProcessIdentity.from_dict(data)
        if identity is None:
            print(f"{name}: not a process identity in {state}; not signalled")
        elif kill_group(identity):
            print(f"stopped {name} (process group {identity.pid})")
        else:
            print(f"{name} (pid {identity.pid}) had already exited; its pid was not signalled")
    state.unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hami-e2e-cluster", description=__doc__)
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--workdir", type=Path, default=repo_root() / ".cache" / "cluster")
    args = parser.parse_args(argv)
    return up(args.workdir) if args.action == "up" else down(args.workdir)


if __name__ == "__main__":
    sys.exit(main())
