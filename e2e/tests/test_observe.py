"""See it work, end to end, on one stack shared by the module: the demo's pods placed on fake
nodes whose containers run real GPU work (the real hook on the fake driver), each node's
monitor, a real Prometheus scraping the monitors and the extender, the web UI in a real headless
Chromium, and ``kubectl hami`` as a person runs it.

Screenshots are kept in the test's folder (``--basetemp`` to keep them somewhere) and under
``.cache/artifacts/ui/`` of the checkout (ignored by git).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hami_common.k8s import PODS, KubeClient
from hami_common.telemetry import pod_trace_id
from hami_e2e.browser import Browser
from hami_e2e.demo import EXAMPLES, POOLS, pod
from hami_e2e.kubelet.node import NodeAgents, start_agents
from hami_e2e.namespaces import create_namespace
from hami_e2e.nodes import create_nodes
from hami_e2e.paths import repo_root
from hami_e2e.process import ManagedProcess
from hami_e2e.prometheus import PrometheusQuery, PrometheusServer, start_for_stack
from hami_e2e.stack import WEBHOOK_NAMESPACE_LABEL, HamiStack, running_stack

pytestmark = pytest.mark.e2e
NS = "observe"
MIB = 1 << 20
RUNNING = [ex for ex in EXAMPLES if not ex.reason]
# the pods whose containers run GPU work under the hook, which the monitors see
ON_GPUS = [ex for ex in RUNNING if "nvidia.com/gpu" in ex.limits]
PENDING = [ex for ex in EXAMPLES if ex.reason]
DASHBOARD = repo_root() / "dashboards" / "hami-rs.json"
ARTEFACTS = repo_root() / ".cache" / "artifacts" / "ui"


@dataclass
class Observed:
    stack: HamiStack
    agents: NodeAgents
    prometheus: PrometheusServer
    prometheus_process: ManagedProcess
    pods: dict[str, dict[str, Any]]
    shots: Path

    @property
    def query(self) -> PrometheusQuery:
        return PrometheusQuery(self.prometheus.url)

    def monitor_metrics(self, node: str) -> str:
        port = self.agents.monitors[node]
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


async def _namespace(kube: KubeClient) -> None:
    await create_namespace(kube, NS, {WEBHOOK_NAMESPACE_LABEL: "true"})


def _settled(p: dict[str, Any]) -> bool:
    status = p.get("status") or {}
    conditions = status.get("conditions") or []
    return status.get("phase") == "Running" or any(
        c.get("reason") == "Unschedulable" for c in conditions
    )


async def _setup(stack: HamiStack) -> NodeAgents:
    async with stack.client() as kube:
        names = await create_nodes(kube, POOLS)
        await _namespace(kube)
        return await start_agents(stack.cluster, kube, names, observe=True)


async def _create_pods(stack: HamiStack) -> dict[str, dict[str, Any]]:
    async with stack.client() as kube:
        for ex in EXAMPLES:
            await kube.create(PODS, pod(ex), namespace=NS)
        deadline = time.monotonic() + 120
        while True:
            pods = {ex.name: await kube.get(PODS, ex.name, namespace=NS) for ex in EXAMPLES}
            if all(_settled(p) for p in pods.values()) or time.monotonic() > deadline:
                return pods
            await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    workdir = tmp_path_factory.mktemp("observe")
    with running_stack(workdir) as stack:
        agents = asyncio.run(_setup(stack))
        try:
            # Prometheus before the pods, so rates over the filters and binds have samples
            prometheus, process = start_for_stack(stack, agents.monitors)
            try:
                pods = asyncio.run(_create_pods(stack))
                yield Observed(stack, agents, prometheus, process, pods, workdir / "shots")
            finally:
                process.stop()
        finally:
            agents.stop()


def _wait(probe: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f}s: {what}")
        time.sleep(0.5)


def test_pods_placed_as_the_demo_expects(observed: Observed) -> None:
    for ex in RUNNING:
        assert observed.pods[ex.name]["status"]["phase"] == "Running", ex.name
    for ex in PENDING:
        assert not observed.pods[ex.name]["spec"].get("nodeName"), ex.name


def test_monitors_export_real_numbers_of_the_containers(observed: Observed) -> None:
    """Every running container's workload holds half its limit on each of its devices: the
    hook counts it in the region, the monitor exports it, and NVML on the node agrees."""
    want: dict[tuple[str, str], int] = {}
    for ex in ON_GPUS:
        node = observed.pods[ex.name]["spec"]["nodeName"]
        want[(node, ex.name)] = ex.devices[0][0] // 2 * MIB

    def exported() -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for node in observed.agents.monitors:
            for line in observed.monitor_metrics(node).splitlines():
                m = re.match(r'hami_vgpu_memory_used_bytes\{namespace="observe",pod="([^"]+)",'
                             r'container="cuda",vdevice_index="0",.*\} (\d+)', line)  # fmt: skip
                if m:
                    out[(node, m.group(1))] = float(m.group(2))
        return out

    got = _wait(lambda: (e := exported()) == want and e, 60, f"monitors to export {want}")
    assert got == want
    node, name = next(iter(want))
    text = observed.monitor_metrics(node)
    limit = re.search(rf'hami_vgpu_memory_limit_bytes\{{namespace="observe",pod="{name}",'
                      r'container="cuda",vdevice_index="0",device_uuid="(GPU-[^"]+)",'
                      r'zone="vGPU"\} (\d+)', text)  # fmt: skip
    assert limit is not None, text
    ex = next(e for e in ON_GPUS if e.name == name)
    assert int(limit.group(2)) == ex.devices[0][0] * MIB
    used = re.search(rf'hami_host_gpu_memory_used_bytes\{{node="{node}",device_index="\d+",'
                     rf'device_uuid="{limit.group(1)}",device_type="NVIDIA-Tesla-T4",'
                     r'zone="vGPU"\} (\d+)', text)  # fmt: skip
    assert used is not None, text
    assert int(used.group(1)) >= want[(node, name)]  # the driver sees at least this pod's


def test_every_dashboard_panel_query_returns_data(observed: Observed) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        t["expr"].replace("$node", ".*").replace("$namespace", ".*")
        for p in dashboard["panels"] for t in p.get("targets") or []
    ]  # fmt: skip
    assert len(exprs) >= 20
    query = observed.query

    def missing() -> list[str]:
        return [e for e in exprs if not query.query(e)]

    left = missing()
    deadline = time.monotonic() + 90
    while left and time.monotonic() < deadline:
        time.sleep(2)
        left = missing()
    assert not left, f"no data for: {left}"
    up = {(t["labels"]["job"], t["health"]) for t in query.targets()}
    assert up == {("hami-extender", "up"), ("hami-monitor", "up")}, query.targets()
    reasons = {m["reason"]: v for m, v in query.query("hami_extender_pending_pods")}
    assert reasons == {"CardTypeMismatch": 1, "CardInsufficientMemory": 1}


def _shot(browser: Browser, observed: Observed, name: str) -> None:
    for folder in (observed.shots, ARTEFACTS):
        browser.screenshot(folder / f"{name}.png")


def test_web_ui_in_a_real_browser(observed: Observed, tmp_path: Path) -> None:
    base = observed.stack.extender_url()
    one = observed.pods["one-gpu"]
    node = one["spec"]["nodeName"]
    with Browser(tmp_path / "browser") as browser:
        browser.get(f"{base}/ui")
        assert browser.attributes("tr[data-node]", "data-node") == sorted(observed.agents.nodes)
        _shot(browser, observed, "overview")
        browser.click(f'tr[data-node="{node}"] a')
        assert browser.url.endswith(f"/ui/nodes/{node}")
        on_node = browser.attributes("[data-pod]", "data-pod")
        assert f"{NS}/one-gpu" in on_node
        for ex in RUNNING:
            where = observed.pods[ex.name]["spec"]["nodeName"]
            assert (f"{NS}/{ex.name}" in on_node) == (where == node), ex.name
        device = one["metadata"]["annotations"]["hami.io/vgpu-devices-allocated"].split(",")[0]
        [row] = browser.texts(f'tr[data-device="{device}"]')
        assert f"{NS}/one-gpu" in row
        assert "18% 2.9 GiB of 16.0 GiB" in row, row  # 3000 of 16384 MiB promised
        _shot(browser, observed, "node")
        browser.get(f"{base}/ui/pending")
        pods = browser.attributes("tr[data-pod]", "data-pod")
        pending = dict(zip(pods, browser.attributes("tr[data-pod]", "data-reason"), strict=True))
        assert pending == {f"{NS}/{ex.name}": ex.reason for ex in PENDING}
        _shot(browser, observed, "pending")
        browser.click(f'tr[data-pod="{NS}/a100-only"] a')
        assert browser.texts("[data-status]") == ["pending"]
        assert browser.texts("[data-reason]") == ["CardTypeMismatch"]
        trace = pod_trace_id(observed.pods["a100-only"])
        links = browser.attributes("a#trace", "href")
        assert links == [f"{observed.stack.cluster.traces_url}/trace/{trace}"]
        _shot(browser, observed, "pod-pending")
    assert (ARTEFACTS / "node.png").stat().st_size > 10_000


def _kubectl_hami(observed: Observed, *args: str) -> subprocess.CompletedProcess[str]:
    stack = observed.stack
    env = {**os.environ, "KUBECONFIG": str(stack.cluster.kubeconfig),
           "HAMI_PROMETHEUS_URL": observed.prometheus.url,
           "HAMI_EXTENDER_URL": stack.extender_url(),
           "HAMI_EXTENDER_CA": str(stack.extender_tls.ca_file),
           "HAMI_TRACES_URL": stack.cluster.traces_url or ""}  # fmt: skip
    exe = Path(os.environ.get("VIRTUAL_ENV", repo_root() / ".venv")) / "bin" / "kubectl-hami"
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_kubectl_hami(observed: Observed) -> None:
    pending = _kubectl_hami(observed, "explain", "a100-only", "-n", NS)
    assert pending.returncode == 0, pending.stderr
    assert "Reason:     CardTypeMismatch" in pending.stdout
    assert re.search(r"  demo-gpu-[01]   4/4 CardTypeMismatch", pending.stdout), pending.stdout
    trace = pod_trace_id(observed.pods["a100-only"])
    assert f"{observed.stack.cluster.traces_url}/trace/{trace}" in pending.stdout
    placed = _kubectl_hami(observed, "explain", "one-gpu", "-n", NS, "-o", "json")
    doc = json.loads(placed.stdout)
    assert doc["node"] == observed.pods["one-gpu"]["spec"]["nodeName"]
    assert [(d["memoryMiB"], d["cores"]) for d in doc["devices"]] == [(3000, 30)]

    def used() -> dict[str, Any] | None:
        top = _kubectl_hami(observed, "top", "pods", "-n", NS, "-o", "json")
        rows = {r["pod"]: r for r in json.loads(top.stdout)["containers"] if r["device"]}
        return rows if all(rows.get(ex.name, {}).get("memoryUsedMiB") for ex in ON_GPUS) else None

    rows = _wait(used, 60, "kubectl hami top pods to show what each pod uses")
    assert (rows["one-gpu"]["memoryPromisedMiB"], rows["one-gpu"]["memoryUsedMiB"]) == (3000, 1500)
    table = _kubectl_hami(observed, "top", "nodes")
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split()[:5] == ["NODE", "DEVICE", "TYPE", "MEMORY(PROMISED)", "MEMORY(USED)"]
    # the GPUs (the devices whose use the monitors report)
    gpus = sum(pool.count * pool.devices_per_node for pool in POOLS if pool.vendor == "nvidia")
    assert len(lines) == gpus
    missing = _kubectl_hami(observed, "explain", "nobody", "-n", NS)
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error from server (NotFound)")


def test_a_deleted_pods_workload_stops_and_its_folder_is_reaped(observed: Observed) -> None:
    """Last: it deletes one of the pods."""
    node = observed.pods["half-memory"]["spec"]["nodeName"]
    uid = observed.pods["half-memory"]["metadata"]["uid"]

    async def delete() -> None:
        async with observed.stack.client() as kube:
            await kube.delete(PODS, "half-memory", namespace=NS)

    asyncio.run(delete())
    folders = [f for f in observed.agents.folders if (f / "hook").exists()]
    gone = _wait(lambda: not any((f / "hook/vgpu/containers" / f"{uid}_cuda").exists()
                                 for f in folders), 60, "the folder reaped")  # fmt: skip
    assert gone
    assert 'pod="half-memory"' not in observed.monitor_metrics(node)
