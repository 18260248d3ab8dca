"""`./just cluster-up` / `./just cluster-down` as a person runs them: the commands that up prints
work as printed (kubectl applies the example pods, a GPU one and an Ascend one, the extender
explains them, the kubelet stand-in logs their Allocate, Jaeger holds a trace), and down stops
every process it started. Bad node counts are refused before anything starts."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from hami_e2e.process import ProcessIdentity
from hami_e2e.waiting import eventually

T = TypeVar("T")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hami_e2e.cli", *args],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def _printed(out: str, pattern: str) -> str:
    found = re.search(pattern, out, flags=re.MULTILINE)
    assert found is not None, f"{pattern!r} not in:\n{out}"
    return found[1]


def _kubectl_pod(kubectl: str, env: dict[str, str], name: str) -> dict[str, Any] | None:
    """The pod once it runs."""
    got = subprocess.run([kubectl, "get", "pod", name, "-o", "json"], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    doc: dict[str, Any] = json.loads(got.stdout)
    return doc if doc["status"]["phase"] == "Running" else None


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--npu-nodes", "51"], "--npu-nodes is 0..50, not 51"),
        (["--mlu-nodes", "-1"], "--mlu-nodes is 0..50, not -1"),
        (["--gpu-nodes", "0"], "no node asked for"),
        (["--devices-per-node", "17"], "--devices-per-node is 1..16, not 17"),
    ],
)
def test_up_refuses_bad_node_counts_before_starting(
    tmp_path: Path, args: list[str], said: str
) -> None:
    done = _cli("up", "--workdir", str(tmp_path / "cluster"), *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "cluster").exists()


def _until(probe: Callable[[], T | None], within: float = 60.0, *, what: str) -> T:
    """`eventually` for this suite's blocking probes (kubectl, a log file, an HTTP GET)."""
    return asyncio.run(eventually(lambda: asyncio.to_thread(probe), within, what=what))


@pytest.mark.e2e
@pytest.mark.timeout(400)
def test_cluster_up_brings_the_whole_stack_and_its_printed_commands_work(tmp_path: Path) -> None:
    workdir = tmp_path / "cluster"
    recorded: dict[str, ProcessIdentity | None] = {}
    try:
        up = _cli("up", "--workdir", str(workdir), "--gpu-nodes", "1", "--npu-nodes", "1")
        assert up.returncode == 0, up.stdout + up.stderr
        out = up.stdout
        env = {**os.environ, "KUBECONFIG": _printed(out, r"^  export KUBECONFIG=(\S+)$")}
        kubectl = _printed(out, r"^  alias kubectl=(\S+)$")
        state = json.loads((workdir / "state.json").read_text())
        recorded = {n: ProcessIdentity.from_dict(i) for n, i in state["processes"].items()}
        assert {"etcd", "kube-apiserver", "kube-scheduler", "jaeger", "webhook", "extender",
                "kubelet-gpu-0-and-more", "plugin-gpu-0", "monitor-gpu-0", "plugin-npu-0",
                "prometheus"} <= set(recorded)  # fmt: skip
        assert "1 fake Huawei Ascend node (npu-0: 4 x 910B3, 65536 MiB each)" in out
        assert "monitor-npu-0" not in recorded  # the monitor reads what the CUDA hook writes

        applies = re.findall(r"^  kubectl apply -f (\S+)$", out, flags=re.MULTILINE)
        assert [Path(a).name for a in applies] == ["gpu-pod.yaml", "ascend-pod.yaml"]
        for apply in applies:
            subprocess.run([kubectl, "apply", "-f", apply], env=env, check=True, timeout=60)
        running = _until(lambda: _kubectl_pod(kubectl, env, "gpu-pod"), what="gpu-pod running")
        assert running["spec"]["nodeName"] == "gpu-0"
        assert running["spec"]["schedulerName"] == "hami-scheduler"
        npu_pod = _until(
            lambda: _kubectl_pod(kubectl, env, "ascend-pod"), what="ascend-pod running"
        )
        assert npu_pod["spec"]["nodeName"] == "npu-0"

        curls = re.findall(r"^  (curl -s --cacert .*)$", out, flags=re.MULTILINE)
        assert len(curls) == 2, out
        trust = None
        for printed, node in zip(curls, ("gpu-0", "npu-0"), strict=True):
            curl = shlex.split(printed)
            trust = ssl.create_default_context(cafile=curl[curl.index("--cacert") + 1])
            explained = httpx.get(curl[-1], verify=trust, timeout=10).json()
            assert explained["summary"] == f"bound to node {node}"
        assert trust is not None

        kubelet_log = workdir / "cluster" / "logs" / "kubelet-gpu-0-and-more.log"

        def allocate_line(pod: str) -> str | None:
            lines = kubelet_log.read_text().splitlines()
            return next((x for x in lines if f"Allocate for default/{pod}" in x), None)

        line = _until(lambda: allocate_line("gpu-pod"), what="gpu-pod's Allocate logged")
        assert "CUDA_DEVICE_MEMORY_LIMIT_0=3000m" in line
        assert "CUDA_DEVICE_SM_LIMIT=30" in line
        # the Ascend plugin's answer: 2000 MiB rounded up to the smallest template that holds it
        line = _until(lambda: allocate_line("ascend-pod"), what="ascend-pod's Allocate logged")
        assert "ASCEND_VNPU_SPECS=vir05_1c_16g" in line, line
        assert "ASCEND_VISIBLE_DEVICES=" in line, line

        traces = _printed(out, r"^traces \(Jaeger\): (\S+)$")
        trace_id = running["metadata"]["annotations"]["hami.io/trace-context"].split("-")[1]

        def spans() -> set[str]:
            reply = httpx.get(f"{traces}/api/v3/traces/{trace_id}", timeout=5)
            if reply.status_code != 200:
                return set()
            names = {s["name"] for rs in reply.json()["result"]["resourceSpans"]
                     for ss in rs["scopeSpans"] for s in ss["spans"]}  # fmt: skip
            return names if {"admission", "filter", "bind", "Allocate"} <= names else set()

        assert _until(spans, 30, what="the trace's admission, filter, bind and Allocate spans")

        # the pod's container runs real work: the node's monitor exports it, Prometheus has it,
        # and kubectl hami, set up as printed, shows promised against used
        monitor = _printed(out, r"^node monitor of gpu-0: (\S+)$")
        used = r'hami_vgpu_memory_used_bytes\{namespace="default",pod="gpu-pod",.* 1572864000'
        assert _until(lambda: re.search(used, httpx.get(monitor, timeout=5).text), 60,
                      what="gpu-pod's used memory exported by the monitor")  # fmt: skip
        ui = _printed(out, r"^web UI: (\S+)  \(")
        page = httpx.get(f"{ui}/nodes/gpu-0", verify=trust, timeout=10).text
        assert 'data-pod="default/gpu-pod"' in page
        exports = dict(kv.split("=", 1) for kv in _printed(out, r"^  export (HAMI_.*)$").split())
        top = _printed(out, r"^  (\S+kubectl-hami) top nodes;")

        def top_pods() -> str | None:
            got = subprocess.run([top, "top", "pods"], env={**env, **exports},
                                 capture_output=True, text=True, check=True)  # fmt: skip
            return got.stdout if "1500Mi" in got.stdout else None

        shown = _until(top_pods, 60, what="kubectl hami top pods showing the used memory")
        assert re.search(r"gpu-pod\s+cuda\s+gpu-0\s+GPU-\S+\s+3000Mi\s+1500Mi\s+30%", shown)
    finally:
        down = _cli("down", "--workdir", str(workdir))
        assert down.returncode == 0, down.stderr
    time.sleep(0.5)
    still = [n for n, who in recorded.items() if who is not None and who.is_running()]
    assert still == []
    assert not (workdir / "state.json").exists()


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_cluster_up_with_dra_places_the_example_pod_through_a_claim(tmp_path: Path) -> None:
    """``up --dra``: the printed example pod, unchanged, becomes a claim that kube-scheduler
    allocates on the GPU node's DRA driver, and the stand-in's log (grepped as printed) holds
    what the driver prepared."""
    workdir = tmp_path / "cluster"
    recorded: dict[str, ProcessIdentity | None] = {}
    try:
        up = _cli("up", "--workdir", str(workdir), "--dra", "--gpu-nodes", "1",
                  "--devices-per-node", "2")  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        out = up.stdout
        assert "1 fake GPU node (gpu-0: 2 x NVIDIA-Tesla-T4, 16384 MiB each) with the NVIDIA " \
               "DRA driver" in out  # fmt: skip
        state = json.loads((workdir / "state.json").read_text())
        recorded = {n: ProcessIdentity.from_dict(i) for n, i in state["processes"].items()}
        assert {"webhook", "plugin-gpu-0", "kubelet-gpu-0"} <= set(recorded)
        env = {**os.environ, "KUBECONFIG": _printed(out, r"^  export KUBECONFIG=(\S+)$")}
        kubectl = _printed(out, r"^  alias kubectl=(\S+)$")
        apply = _printed(out, r"^  kubectl apply -f (\S+)$")
        subprocess.run([kubectl, "apply", "-f", apply], env=env, check=True, timeout=60)
        running = _until(lambda: _kubectl_pod(kubectl, env, "gpu-pod"), what="gpu-pod running")
        assert running["spec"]["nodeName"] == "gpu-0"
        assert running["spec"]["resourceClaims"][0]["resourceClaimTemplateName"]
        assert "kubectl get resourceclaims -o yaml" in out
        got = subprocess.run([kubectl, "get", "resourceclaims", "-o", "json"], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
        (claim,) = json.loads(got.stdout)["items"]
        (result,) = claim["status"]["allocation"]["devices"]["results"]
        assert result["consumedCapacity"]["memory"] == "3000Mi"
        grep = shlex.split(_printed(out, r"^  (grep NodePrepareResources \S+)$"))

        def prepared() -> str | None:
            files = sorted(Path(grep[-1]).parent.glob(Path(grep[-1]).name))
            lines = [x for f in files for x in f.read_text().splitlines() if grep[1] in x]
            return next((x for x in lines if "default/gpu-pod" in x), None)

        line = _until(prepared, 60, what="the claim's NodePrepareResources logged")
        assert f"gpu-0/{result['device']} share " in line, line
    finally:
        down = _cli("down", "--workdir", str(workdir))
        assert down.returncode == 0, down.stderr
    time.sleep(0.5)
    assert [n for n, who in recorded.items() if who is not None and who.is_running()] == []
