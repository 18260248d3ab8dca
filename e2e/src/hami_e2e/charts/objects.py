"""What the chart install test (charts/tests/test_install.py) reads and waits on in the cluster:
the API resource of each kind the release holds, a live object by its manifest, a DaemonSet's
wanted count, a namespace the installed webhook selects, and the README's example pods placed
through the release's components. A wait that runs out raises `AssertionError` saying what was
not reached (a test failure, not an error of the harness)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import yaml
from hami_common.k8s import (
    MUTATING_WEBHOOK_CONFIGURATIONS,
    PODS,
    SECRETS,
    SERVICE_ACCOUNTS,
    KubeClient,
    Resource,
    load_config,
)

from hami_e2e.charts.release import ChartStack
from hami_e2e.namespaces import create_namespace
from hami_e2e.paths import repo_root

Json = dict[str, Any]
EXAMPLES = repo_root() / "e2e" / "examples"  # the README's example pods
REPLICA_SETS = Resource("apps/v1", "replicasets")
KINDS = {
    "ServiceAccount": SERVICE_ACCOUNTS,
    "Secret": SECRETS,
    "ConfigMap": Resource("v1", "configmaps"),
    "Service": Resource("v1", "services"),
    "Deployment": Resource("apps/v1", "deployments"),
    "DaemonSet": Resource("apps/v1", "daemonsets"),
    "Role": Resource("rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": Resource("rbac.authorization.k8s.io/v1", "rolebindings"),
    "ClusterRole": Resource("rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False),
    "ClusterRoleBinding": Resource(
        "rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False
    ),
    "MutatingWebhookConfiguration": MUTATING_WEBHOOK_CONFIGURATIONS,
}


def client(path: Path) -> KubeClient:
    return KubeClient(load_config(path))


def resource(doc: Json) -> Resource:
    return KINDS[doc["kind"]]


async def get(kube: KubeClient, doc: Json) -> Json:
    """The live copy of the object ``doc`` of the release's manifest."""
    res = resource(doc)
    ns = doc["metadata"].get("namespace") if res.namespaced else None
    return await kube.get(res, doc["metadata"]["name"], namespace=ns)


async def daemon_set_wants(kube: KubeClient, stack: ChartStack, name: str, want: int) -> None:
    """Until the DaemonSet ``name``, as its controller last saw the nodes, wants ``want``."""
    deadline = time.monotonic() + 30
    while True:
        ds = await kube.get(KINDS["DaemonSet"], name, namespace=stack.namespace)
        status = ds.get("status") or {}
        seen = status.get("observedGeneration") == ds["metadata"]["generation"]
        if seen and status.get("desiredNumberScheduled") == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} wants {status}, not {want}")
        await asyncio.sleep(0.2)


async def device_namespace(kube: KubeClient, stack: ChartStack, name: str) -> str:
    """A namespace the release's webhook selects, once its default ServiceAccount exists."""
    return await create_namespace(kube, name, {"hami.io/chart-test": stack.label})


def example_pod(name: str, example: str = "gpu-pod.yaml") -> Json:
    """The README's example pod ``example`` (e2e/examples/), named ``name``."""
    pod: Json = yaml.safe_load((EXAMPLES / example).read_text())
    pod["metadata"]["name"] = name
    return pod


async def place(
    kube: KubeClient, stack: ChartStack, ns: str, name: str, example: str = "gpu-pod.yaml"
) -> Json:  # fmt: skip
    """Create an example pod and wait until its plugin's Allocate marked it bind-phase=success."""
    created = await kube.create(PODS, example_pod(name, example), namespace=ns)
    if created["spec"]["schedulerName"] != "hami-scheduler":
        raise AssertionError(f"the webhook did not admit pod {name}: {created['spec']}")
    deadline = time.monotonic() + 60
    while True:
        pod = await kube.get(PODS, name, namespace=ns)
        if (pod["metadata"].get("annotations") or {}).get("hami.io/bind-phase") == "success":
            return pod
        for proc in stack.processes.values():
            proc.check()
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} not placed: {pod}\n{stack.logs()}")
        await asyncio.sleep(0.2)


def assert_never_refused(stack: ChartStack) -> None:
    """No component's log shows the API server refusing it (HTTP 403)."""
    for name, proc in stack.processes.items():
        text = proc.log.read_text(errors="replace")
        if " 403" in text or "forbidden" in text.lower():
            raise AssertionError(f"{name} was refused: see {proc.log}")
