"""`just cluster-up` / `just cluster-down`: a control plane for people, left running.

``up`` starts the local cluster in ``<repo>/.cache/cluster`` (or ``--workdir``), detaches its
processes (each in its own process group), records their group ids in ``state.json`` and
prints how to point kubectl at it and where the traces are (Jaeger's query API and UI, and the
OTLP endpoint to export to). ``down`` stops every recorded group and removes the state.
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
from hami_e2e.process import ProcessError, detach, kill_group


def _state(workdir: Path) -> Path:
    return workdir / "state.json"


def up(workdir: Path) -> int:
    if _state(workdir).exists():
        print(f"a cluster is already recorded in {_state(workdir)}; run `just cluster-down` first")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    cluster = LocalCluster(workdir, detachable=True)
    try:
        cluster.start()
    except (ClusterError, ProcessError) as exc:
        print(f"cluster-up failed: {exc}", file=sys.stderr)
        return 1
    groups = {p.name: p.pid for p in cluster.processes if p.pid is not None}
    for proc in cluster.processes:
        detach(proc)
    _state(workdir).write_text(json.dumps({"process_groups": groups}, indent=2) + "\n")
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
    groups: dict[str, int] = json.loads(state.read_text())["process_groups"]
    for name, pgid in reversed(list(groups.items())):
        kill_group(pgid)
        print(f"stopped {name} (process group {pgid})")
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
