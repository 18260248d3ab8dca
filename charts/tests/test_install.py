"""The umbrella chart installed into the real control plane by the real helm (README, "Install
on a cluster"), with every vendor on, then every component run as a process from what the
release holds, each under its own chart-made ServiceAccount (`hami_e2e.charts.release`): the API
server accepts every object, a GPU, an Ascend and a Cambricon pod each pass admission,
kube-scheduler, the extender and their vendor's plugin's Allocate, the node monitor serves its
metrics with the chart's certificate and removes what pods left, each account is refused what
its component does not need, `helm upgrade` keeps the certificates and what runs, and `helm
uninstall` removes every object. The tests run in order on one release."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hami_common.k8s import (
    LEASES,
    MUTATING_WEBHOOK_CONFIGURATIONS,
    NODES,
    PODS,
    SECRETS,
    ApiError,
    Forbidden,
    KubeClient,
    NotFound,
)
from hami_e2e.backend import Cluster
from hami_e2e.charts.objects import (
    KINDS,
    REPLICA_SETS,
    assert_never_refused,
    client,
    daemon_set_wants,
    device_namespace,
    example_pod,
    get,
    place,
)
from hami_e2e.charts.release import ChartStack
from hami_e2e.nodes import NodePool, create_nodes, delete_nodes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
Json = dict[str, Any]
# Created without their labels: the test labels them, as the README's first step does.
GPU = NodePool(name="chart-gpu", count=1, devices_per_node=2, labels={})
NPU = NodePool(name="chart-npu", count=1, devices_per_node=2, vendor="ascend", model="910B3",
               device_memory_mib=65536, labels={})  # fmt: skip
MLU = NodePool(name="chart-mlu", count=1, devices_per_node=2, vendor="cambricon",
               model="MLU370-X8", device_memory_mib=24576, labels={})  # fmt: skip
NODE, NPU_NODE, MLU_NODE = (p.node_names()[0] for p in (GPU, NPU, MLU))
# The README's install of every vendor (and the monitor, on by default).
VENDORS = {"ascend": {"enabled": True}, "cambricon": {"enabled": True},
           "scheduler": {"enableAscend": True}}  # fmt: skip
# The release's DaemonSets: the node each runs on here and the label that puts it there.
DAEMON_SETS = {
    "hami-device-plugin": (NODE, "gpu"),
    "hami-monitor": (NODE, "gpu"),
    "hami-ascend-device-plugin": (NPU_NODE, "ascend"),
    "hami-cambricon-device-plugin": (MLU_NODE, "mlu"),
}
# The monitor reads only the regions here (no NVML), and reaps at once what pods left.
MONITOR_FLAGS = ("--vendor=none", "--reap-after-seconds=1", "--feedback-interval-seconds=0.2")


@pytest.fixture(scope="module")
def stack(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartStack]:
    chart = ChartStack(kube_cluster, tmp_path_factory.mktemp("chart"))

    async def up() -> None:
        async with kube_cluster.client() as kube:
            await create_nodes(kube, [GPU, NPU, MLU])
            chart.install(VENDORS)
            await chart.start_service(kube, "hami-webhook", container="webhook",
                                      port=chart.webhook_port, ready="/readyz")  # fmt: skip
            await chart.start_service(kube, "hami-extender", container="extender",
                                      port=chart.extender_port, ready="/readyz")  # fmt: skip
            await chart.start_kube_scheduler(kube, "hami-scheduler")
            for name, (node, _) in DAEMON_SETS.items():
                if name != "hami-monitor":
                    await chart.start_node(kube, node, name)
            await chart.start_monitor(kube, "hami-monitor", NODE, *MONITOR_FLAGS)

    async def down() -> None:
        async with kube_cluster.client() as kube:
            for pool in (GPU, NPU, MLU):
                await delete_nodes(kube, pool)

    try:
        asyncio.run(up())
        yield chart
    finally:
        chart.stop()
        with contextlib.suppress(Exception):
            chart.uninstall()
        asyncio.run(down())


def test_every_object_is_accepted(stack: ChartStack, kube_cluster: Cluster) -> None:
    kinds = {d["kind"] for d in stack.manifest}
    assert kinds <= set(KINDS), kinds - set(KINDS)
    assert {"Deployment", "DaemonSet", "MutatingWebhookConfiguration", "Secret"} <= kinds
    assert {d["metadata"]["name"] for d in stack.manifest if d["kind"] == "DaemonSet"} == set(
        DAEMON_SETS)  # fmt: skip
    status = stack.helm.ok("status", stack.release, "-n", stack.namespace)
    assert "STATUS: deployed" in status

    async def check() -> None:
        async with kube_cluster.client() as kube:
            for doc in stack.manifest:
                live = await get(kube, doc)
                assert live["metadata"]["labels"]["app.kubernetes.io/instance"] == stack.release

    asyncio.run(check())


def test_each_daemon_set_runs_on_nodes_labelled_for_it(
    stack: ChartStack, kube_cluster: Cluster
) -> None:
    """`kubectl label nodes NODE gpu=on` (ascend=on, mlu=on) is what puts a plugin, and the
    monitor, on a node (HAMi #871, #2280)."""

    async def run() -> None:
        async with kube_cluster.client() as kube:
            for name in DAEMON_SETS:
                await daemon_set_wants(kube, stack, name, 0)
            for node, label in set(DAEMON_SETS.values()):
                await kube.patch(NODES, node, {"metadata": {"labels": {label: "on"}}})
            for name in DAEMON_SETS:
                await daemon_set_wants(kube, stack, name, 1)

    asyncio.run(run())


def test_gpu_pod_is_placed_by_the_chart_components(
    stack: ChartStack, kube_cluster: Cluster
) -> None:
    async def run() -> tuple[Json, str]:
        async with kube_cluster.client() as kube:
            ns = await device_namespace(kube, stack, f"chart-{stack.label}")
            pod = await place(kube, stack, ns, "first")
            node = await kube.get(NODES, NODE)
            return pod, str(node["status"]["allocatable"]["nvidia.com/gpu"])

    pod, allocatable = asyncio.run(run())
    assert allocatable == "20"  # 2 GPUs x deviceSplitCount 10 (README, verify)
    assert pod["spec"]["nodeName"] == NODE
    assert ",NVIDIA,3000,30:" in pod["metadata"]["annotations"]["hami.io/vgpu-devices-allocated"]
    assert_never_refused(stack)


# (example pod, its node, its allocation annotation, what the annotation holds)
VENDOR_PODS = [
    ("ascend-pod.yaml", NPU_NODE, "hami.io/Ascend910B3-devices-allocated", ",Ascend910B3,16384,"),
    ("cambricon-pod.yaml", MLU_NODE, "hami.io/cambricon-mlu-devices-allocated", ",MLU,5120,10:"),
]


@pytest.mark.parametrize("vendor", VENDOR_PODS, ids=lambda v: v[0].split("-")[0])
def test_vendor_pod_is_placed_by_the_chart_components(
    stack: ChartStack, kube_cluster: Cluster, vendor: tuple[str, str, str, str]
) -> None:
    """The Ascend pod passes through the webhook and the extender only with the chart's
    --enable-ascend, and is allocated by the Ascend plugin with the chart's vnpus (HAMi's)."""
    example, node, annotation, holds = vendor

    async def run() -> Json:
        async with kube_cluster.client() as kube:
            return await place(kube, stack, f"chart-{stack.label}", example.removesuffix(".yaml"),
                               example)  # fmt: skip

    pod = asyncio.run(run())
    assert pod["spec"]["nodeName"] == node
    assert holds in pod["metadata"]["annotations"][annotation]
    assert_never_refused(stack)


def test_the_monitor_serves_metrics_with_the_charts_certificate_and_reaps(
    stack: ChartStack, kube_cluster: Cluster
) -> None:
    """The monitor lists its node's pods under its account: the folder the plugin made for the
    placed pod's container stays, the folder of a pod no longer on the node goes; its metrics
    are served over HTTPS with the certificate of the chart's Secret, for the Service's name."""
    containers = stack.hosts[NODE] / "usr" / "local" / "vgpu" / "containers"

    async def read() -> tuple[str, bytes]:
        async with kube_cluster.client() as kube:
            first = await kube.get(PODS, "first", namespace=f"chart-{stack.label}")
            tls = await kube.get(SECRETS, "hami-monitor-tls", namespace=stack.namespace)
            return first["metadata"]["uid"], base64.b64decode(tls["data"]["ca.crt"])

    uid, ca = asyncio.run(read())
    kept = containers / f"{uid}_cuda"
    assert kept.is_dir(), sorted(p.name for p in containers.iterdir())
    gone = containers / "00000000-0000-0000-0000-000000000000_main"
    gone.mkdir()
    os.utime(gone, (time.time() - 60, time.time() - 60))
    deadline = time.monotonic() + 30
    while gone.exists():
        stack.processes[f"hami-monitor-{NODE}"].check()
        assert time.monotonic() < deadline, f"not reaped:\n{stack.logs()}"
        time.sleep(0.2)
    assert kept.is_dir()
    trust = ssl.create_default_context(cadata=ca.decode())
    service = {"sni_hostname": "hami-monitor.kube-system.svc"}  # the name it is checked for
    with httpx.Client(verify=trust, timeout=10) as http:
        reply = http.get(f"https://127.0.0.1:{stack.monitor_port}/metrics", extensions=service)
    assert reply.status_code == 200
    pattern = rf'hami_monitor_containers\{{node="{NODE}",state="initializing"[^}}]*\}} 1'
    assert re.search(pattern, reply.text), reply.text[:2000]


# What each component's account must be refused (it never needs it): (account, verb, target).
REFUSED = [
    ("hami-webhook", "list", "secrets"),
    ("hami-webhook", "patch", "pods"),
    ("hami-webhook", "delete", "nodes"),
    ("hami-extender", "list", "secrets"),
    ("hami-extender", "delete", "pods"),
    ("hami-extender", "delete", "nodes"),
    ("hami-scheduler", "list", "secrets"),
    ("hami-scheduler", "delete", "nodes"),
    ("hami-scheduler", "patch", "nodes"),
    ("hami-device-plugin", "list", "secrets"),
    ("hami-device-plugin", "create", "pods"),
    ("hami-device-plugin", "delete", "nodes"),
    ("hami-ascend-device-plugin", "list", "secrets"),
    ("hami-ascend-device-plugin", "create", "pods"),
    ("hami-ascend-device-plugin", "delete", "nodes"),
    ("hami-cambricon-device-plugin", "list", "secrets"),
    ("hami-cambricon-device-plugin", "delete", "pods"),
    ("hami-cambricon-device-plugin", "delete", "nodes"),
    ("hami-monitor", "list", "secrets"),
    ("hami-monitor", "patch", "pods"),
    ("hami-monitor", "patch", "nodes"),
    ("hami-monitor", "get", "nodes"),
]


@pytest.mark.parametrize(("account", "verb", "target"), REFUSED)
def test_each_account_is_refused_what_it_does_not_need(
    stack: ChartStack, kube_cluster: Cluster, account: str, verb: str, target: str
) -> None:
    placed = f"chart-{stack.label}"  # the namespace of the pod placed above

    async def attempt(kube: KubeClient) -> None:
        if (verb, target) == ("list", "secrets"):
            await kube.list(SECRETS, namespace=stack.namespace)
        elif (verb, target) == ("patch", "pods"):
            await kube.patch(PODS, "first", {"metadata": {"labels": {"x": "y"}}}, namespace=placed)
        elif (verb, target) == ("delete", "pods"):
            await kube.delete(PODS, "first", namespace=placed)
        elif (verb, target) == ("create", "pods"):
            await kube.create(PODS, example_pod("not-allowed"), namespace=placed)
        elif (verb, target) == ("delete", "nodes"):
            await kube.delete(NODES, NODE)
        elif (verb, target) == ("patch", "nodes"):
            await kube.patch(NODES, NODE, {"metadata": {"labels": {"x": "y"}}})
        elif (verb, target) == ("get", "nodes"):
            await kube.get(NODES, NODE)
        else:
            raise AssertionError(f"no attempt written for {verb} {target}")

    async def run() -> None:
        async with client(stack.kubeconfigs[account]) as kube:
            with pytest.raises(Forbidden):
                await attempt(kube)
        async with kube_cluster.client() as admin:  # and nothing was done
            node = await admin.get(NODES, NODE)
            assert "x" not in node["metadata"].get("labels", {})
            pod = await admin.get(PODS, "first", namespace=placed)
            assert "x" not in pod["metadata"].get("labels", {})

    asyncio.run(run())


def test_webhook_down_refuses_device_pods_only(stack: ChartStack, kube_cluster: Cluster) -> None:
    """failurePolicy Fail with matchConditions: while no webhook answers, a device pod is
    refused (it never lands on the default scheduler, HAMi #1536), and any other pod is
    created as usual (it is never sent to the webhook)."""
    ns = f"chart-{stack.label}"
    stack.processes["hami-webhook"].stop()

    async def run() -> None:
        async with kube_cluster.client() as kube:
            for example in ("gpu-pod.yaml", "ascend-pod.yaml"):
                with pytest.raises(ApiError, match="failed calling webhook"):
                    await kube.create(PODS, example_pod("refused", example), namespace=ns)
            plain = example_pod("plain")
            del plain["spec"]["containers"][0]["resources"]
            created = await kube.create(PODS, plain, namespace=ns)
            assert created["spec"]["schedulerName"] == "default-scheduler"
            await kube.delete(PODS, "plain", namespace=ns, grace_period_seconds=0)
            await stack.start_service(kube, "hami-webhook", container="webhook",
                                      port=stack.webhook_port, ready="/readyz")  # fmt: skip

    asyncio.run(run())


TLS_SECRETS = ("hami-webhook-tls", "hami-extender-tls", "hami-scheduler-tls", "hami-monitor-tls")


async def _tls(kube: KubeClient, stack: ChartStack) -> dict[str, Json]:
    found = {n: await kube.get(SECRETS, n, namespace=stack.namespace) for n in TLS_SECRETS}
    return {n: {"data": s["data"], "uid": s["metadata"]["uid"]} for n, s in found.items()}


def test_upgrade_keeps_the_certificates_and_what_runs(
    stack: ChartStack, kube_cluster: Cluster
) -> None:
    async def snapshot(kube: KubeClient) -> tuple[dict[str, Json], str]:
        mwc = await kube.get(MUTATING_WEBHOOK_CONFIGURATIONS, "hami-webhook")
        return await _tls(kube, stack), mwc["webhooks"][0]["clientConfig"]["caBundle"]

    async def run() -> None:
        async with kube_cluster.client() as kube:
            before = await snapshot(kube)
            first = await kube.get(PODS, "first", namespace=f"chart-{stack.label}")
            stack.upgrade({"scheduler": {"extender": {"logLevel": "debug"}}})
            after = await snapshot(kube)
            assert after == before, "helm upgrade issued new certificates"
            ca = base64.b64decode(after[1])
            assert ca == base64.b64decode(after[0]["hami-webhook-tls"]["data"]["ca.crt"])
            # what runs keeps working: the running webhook's certificate still matches the
            # webhook configuration, and the placed pod keeps its devices
            again = await kube.get(PODS, "first", namespace=f"chart-{stack.label}")
            keys = ("hami.io/vgpu-devices-allocated", "hami.io/bind-phase")
            assert {k: again["metadata"]["annotations"][k] for k in keys} == {
                k: first["metadata"]["annotations"][k] for k in keys}  # fmt: skip
            await place(kube, stack, f"chart-{stack.label}", "second")
        history = stack.helm.ok("history", stack.release, "-n", stack.namespace, "-o", "json")
        revisions = [(r["revision"], r["status"], r["description"]) for r in json.loads(history)]
        assert revisions == [(1, "superseded", "Install complete"),
                             (2, "deployed", "Upgrade complete")]  # fmt: skip
        # the upgrade kept every vendor the install chose
        names = {d["metadata"]["name"] for d in stack.manifest if d["kind"] == "DaemonSet"}
        assert names == set(DAEMON_SETS)

    asyncio.run(run())


def test_uninstall_removes_every_object(stack: ChartStack, kube_cluster: Cluster) -> None:
    manifest = stack.read_manifest()
    stack.stop()  # the components first, as their pods would stop
    stack.uninstall()

    async def run() -> list[str]:
        left = []
        async with kube_cluster.client() as kube:
            for doc in manifest:
                with contextlib.suppress(NotFound):
                    await get(kube, doc)
                    left.append(f"{doc['kind']}/{doc['metadata']['name']}")
            # What the README says stays: the two leader-election Leases.
            for lease in ("hami-extender", "hami-scheduler"):
                await kube.get(LEASES, lease, namespace=stack.namespace)
        return left

    assert asyncio.run(run()) == []
    assert stack.helm.run("status", stack.release, "-n", stack.namespace).returncode != 0

    async def owned_left() -> list[str]:
        """What the controllers made from the release (ReplicaSets, pods) goes too."""
        selector = f"app.kubernetes.io/instance={stack.release}"
        deadline = time.monotonic() + 60
        async with kube_cluster.client() as kube:
            while True:
                left = [f"{kind}/{o['metadata']['name']}"
                        for kind, res in (("Pod", PODS), ("ReplicaSet", REPLICA_SETS))
                        for o in (await kube.list(res, namespace=stack.namespace,
                                                  label_selector=selector))["items"]]  # fmt: skip
                if not left or time.monotonic() > deadline:
                    return left
                await asyncio.sleep(0.5)

    assert asyncio.run(owned_left()) == []
