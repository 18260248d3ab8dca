"""Fractional GPUs through DRA on the real control plane: the NVIDIA driver (``--dra``, its own
process per kwok node) publishes ResourceSlices, the real kube-scheduler allocates claims made
from templates with capacity requests (consumable capacity, on by default in 1.36), kubelet's
DRA manager stand-in prepares them over the driver's sockets, and the CDI spec carries the
hook's limits. An over-large claim stays pending with the scheduler's reason; shares never
exceed a device. The stand-in also runs as its own process (``python -m hami_e2e.kubelet
--dra``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hami_common.dra.api import dra_pb2 as dra
from hami_common.k8s import (
    MUTATING_WEBHOOK_CONFIGURATIONS,
    NAMESPACES,
    PODS,
    RESOURCE_CLAIM_TEMPLATES,
    RESOURCE_CLAIMS,
    KubeClient,
    NotFound,
)
from hami_common.telemetry import pod_trace_id
from hami_e2e.backend import Cluster
from hami_e2e.dra import (
    DRA_WEBHOOK,
    DraDrivers,
    claim_pod,
    claim_template,
    ensure_device_class,
    install_dra_webhook,
    start_dra_webhook,
    start_drivers,
    wait_dra_webhook,
)
from hami_e2e.jaeger import JaegerQuery
from hami_e2e.kubelet.dra import DraManager
from hami_e2e.kubelet.node import kubelet_process
from hami_e2e.nodes import NodePool
from hami_e2e.waiting import eventually

pytestmark = pytest.mark.e2e

Nodes = Callable[[NodePool], list[str]]
Json = dict[str, Any]


def _pool(name: str, count: int = 1) -> NodePool:
    # 2 GPUs of 32768 MiB per node; the label keeps each test's pods on its own nodes
    return NodePool(name=name, count=count, devices_per_node=2, labels={"dra": name})


async def _setup(cluster: Cluster, kube: KubeClient, nodes: list[str], ns: str,
                 templates: list[Json]) -> DraDrivers:  # fmt: skip
    await ensure_device_class(kube)
    for t in templates:
        await kube.create(RESOURCE_CLAIM_TEMPLATES, t, namespace=ns)
    return await start_drivers(cluster, kube, nodes)


async def _pods(kube: KubeClient, ns: str) -> dict[str, Json]:
    listed = await kube.list(PODS, namespace=ns)
    return {p["metadata"]["name"]: p for p in listed["items"]}


def _bound(pod: Json) -> bool:
    # bound, and the resourceclaim controller recorded the claim it made for the template
    return bool(pod["spec"].get("nodeName")) and bool(
        (pod.get("status") or {}).get("resourceClaimStatuses")
    )


def test_fractional_claims_are_allocated_prepared_and_unprepared_when_the_pods_go(
    kube_cluster: Cluster, kube_namespace: str, fake_nodes: Nodes
) -> None:
    nodes = fake_nodes(_pool("dra-frac"))
    ns = kube_namespace

    async def main() -> None:
        async with kube_cluster.client() as kube:
            template = claim_template("share", memory="3000Mi", cores="30")
            drivers = await _setup(kube_cluster, kube, nodes, ns, [template])
            try:
                node = drivers.nodes[nodes[0]]
                manager = DraManager(node.name, node.root / "reg", kube)
                info = await manager.register()
                assert info.name == "gpu.hami.io"
                for i in range(3):
                    await kube.create(PODS, claim_pod(f"p{i}", "share", {"dra": "dra-frac"}),
                                      namespace=ns)  # fmt: skip

                async def all_bound() -> dict[str, Json] | None:
                    pods = await _pods(kube, ns)
                    return pods if len(pods) == 3 and all(map(_bound, pods.values())) else None

                pods = await eventually(all_bound, 60, what="3 share pods bound")
                claims: list[dra.Claim] = []
                for pod in pods.values():
                    answer = await manager.admit(pod)
                    ((uid, got),) = answer.items()
                    assert got.error == ""
                    (device,) = got.devices
                    assert device.pool_name == node.name
                    assert device.share_id  # a share, not the whole device
                    spec = json.loads((node.cdi_dir / f"hami.io-gpu_{uid}.json").read_text())
                    assert [d["containerEdits"]["env"] for d in spec["devices"]] == [
                        ["CUDA_DEVICE_MEMORY_LIMIT_0=3000m"]
                    ]
                    env = dict(e.split("=", 1) for e in spec["containerEdits"]["env"])
                    assert env["CUDA_DEVICE_SM_LIMIT"] == "30"
                    mounts = {m["containerPath"] for m in spec["containerEdits"]["mounts"]}
                    assert "/etc/hami/vgpu-limits.conf" in mounts
                    claims.extend(await manager.claims_of(pod))
                    # the scheduler's accounting, as the driver read it
                    claim = await kube.get(RESOURCE_CLAIMS, claims[-1].name, namespace=ns)
                    (result,) = claim["status"]["allocation"]["devices"]["results"]
                    assert result["consumedCapacity"]["memory"] == "3000Mi"
                    assert result["consumedCapacity"]["cores"] == "30"
                # kubelet's part from here on: the pods go, their claims are unprepared, and
                # the resourceclaim controller deletes the claims it made
                watcher = asyncio.create_task(manager.run())
                try:

                    async def watching() -> bool:
                        return len(manager.pods) == len(pods)

                    await eventually(watching, 30, what="the DRA manager following the 3 pods")
                    for name in pods:
                        await kube.delete(PODS, name, namespace=ns)

                    async def cleaned() -> bool:
                        # the stand-in has the driver's answer to each unprepare, the driver
                        # removed the specs, and the controller deleted the claims
                        left = (await kube.list(RESOURCE_CLAIMS, namespace=ns))["items"]
                        unprepared = not manager.pods and not manager.prepared
                        return unprepared and not left and not list(node.cdi_dir.glob("*.json"))

                    await eventually(cleaned, 60, what="claims unprepared and deleted")
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
                assert manager.errors == []
            finally:
                drivers.stop()

    asyncio.run(main())


def test_an_over_large_claim_stays_pending_and_shares_never_exceed_a_device(
    kube_cluster: Cluster, kube_namespace: str, fake_nodes: Nodes
) -> None:
    nodes = fake_nodes(_pool("dra-full"))
    ns = kube_namespace

    async def main() -> None:
        async with kube_cluster.client() as kube:
            templates = [claim_template("huge", memory="40000Mi"),
                         claim_template("big", memory="20000Mi", cores="40")]  # fmt: skip
            drivers = await _setup(kube_cluster, kube, nodes, ns, templates)
            try:
                node = drivers.nodes[nodes[0]]
                manager = DraManager(node.name, node.root / "reg", kube)
                await manager.register()
                selector = {"dra": "dra-full"}
                await kube.create(PODS, claim_pod("huge", "huge", selector), namespace=ns)
                for i in range(3):  # 2 GPUs of 32768 MiB: only one 20000 MiB share on each
                    await kube.create(PODS, claim_pod(f"big{i}", "big", selector), namespace=ns)

                async def settled() -> dict[str, Json] | None:
                    pods = await _pods(kube, ns)
                    bound = [p for p in pods.values() if _bound(p)]
                    unschedulable = [
                        p for p in pods.values()
                        if any(c.get("type") == "PodScheduled" and c.get("reason") ==
                               "Unschedulable" for c in p["status"].get("conditions") or [])
                    ]  # fmt: skip
                    return pods if len(bound) == 2 and len(unschedulable) == 2 else None

                pods = await eventually(settled, 90, what="2 big pods bound, 2 pods unschedulable")
                huge = next(c for c in pods["huge"]["status"]["conditions"]
                            if c["type"] == "PodScheduled")  # fmt: skip
                assert huge["status"] == "False"
                assert "cannot allocate all claims" in huge["message"], huge["message"]
                used: dict[str, int] = defaultdict(int)
                for pod in (p for p in pods.values() if _bound(p)):
                    answer = await manager.admit(pod)
                    assert [a.error for a in answer.values()] == [""]
                    for claim in await manager.claims_of(pod):
                        obj = await kube.get(RESOURCE_CLAIMS, claim.name, namespace=ns)
                        for r in obj["status"]["allocation"]["devices"]["results"]:
                            used[r["device"]] += int(r["consumedCapacity"]["memory"][:-2])
                assert sorted(used) == ["gpu-0", "gpu-1"]
                assert all(v <= 32768 for v in used.values()), used
            finally:
                drivers.stop()

    asyncio.run(main())


def test_the_webhook_turns_a_hami_request_into_a_claim_the_scheduler_allocates(
    kube_cluster: Cluster, kube_namespace: str, fake_nodes: Nodes, tmp_path: Path
) -> None:
    nodes = fake_nodes(_pool("dra-hook"))
    ns = kube_namespace
    webhook, port, ca = start_dra_webhook(kube_cluster, tmp_path)

    async def main() -> str | None:
        async with kube_cluster.client() as kube:
            label = "hami-dra-e2e"
            await kube.patch(NAMESPACES, ns, {"metadata": {"labels": {label: "true"}}})
            await install_dra_webhook(kube, port, ca, label)
            await wait_dra_webhook(kube, ns)
            drivers = await _setup(kube_cluster, kube, nodes, ns, [])
            try:
                node = drivers.nodes[nodes[0]]
                manager = DraManager(node.name, node.root / "reg", kube)
                await manager.register()
                limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000",
                          "nvidia.com/gpucores": "30"}  # fmt: skip
                body = {
                    "metadata": {"name": "hami-style"},
                    "spec": {
                        "nodeSelector": {"dra": "dra-hook"},
                        "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                        "resources": {"limits": limits}}],
                    },
                }  # fmt: skip
                created = await kube.create(PODS, body, namespace=ns)
                # as the API server stored it: a claim from the webhook's template, no NVIDIA
                # resources, and kube-scheduler's own profile
                spec = created["spec"]
                assert spec["resourceClaims"] == [
                    {"name": "hami-gpu-0", "resourceClaimTemplateName": "hami-gpu-1x-3000mi-30c"}
                ]
                assert spec["containers"][0]["resources"] == {"claims": [{"name": "hami-gpu-0"}]}
                assert spec["schedulerName"] == "default-scheduler"
                await kube.get(RESOURCE_CLAIM_TEMPLATES, "hami-gpu-1x-3000mi-30c", namespace=ns)

                async def bound() -> Json | None:
                    pod = await kube.get(PODS, "hami-style", namespace=ns)
                    return pod if _bound(pod) else None

                pod = await eventually(bound, 60, what="the converted pod bound")
                ((uid, got),) = (await manager.admit(pod)).items()
                assert got.error == ""
                spec_file = json.loads((node.cdi_dir / f"hami.io-gpu_{uid}.json").read_text())
                assert spec_file["devices"][0]["containerEdits"]["env"] == [
                    "CUDA_DEVICE_MEMORY_LIMIT_0=3000m"
                ]
                env = dict(e.split("=", 1) for e in spec_file["containerEdits"]["env"])
                assert env["CUDA_DEVICE_SM_LIMIT"] == "30"
                return pod_trace_id(pod)
            finally:
                drivers.stop()  # SIGTERM: the driver exports its last spans
                with contextlib.suppress(NotFound):
                    await kube.delete(MUTATING_WEBHOOK_CONFIGURATIONS, DRA_WEBHOOK)

    try:
        trace_id = asyncio.run(main())
    finally:
        webhook.kill(signal.SIGTERM)
    # one trace: the webhook's admission, and the driver's prepare under it
    assert trace_id is not None
    assert kube_cluster.traces_url is not None
    trace = JaegerQuery(kube_cluster.traces_url).wait_trace(
        trace_id, lambda t: t.has("admission", "NodePrepareResources"), within=30
    )
    admission, prepare = trace.span("admission"), trace.span("NodePrepareResources")
    assert prepare.parent_id == admission.span_id
    assert prepare.service == "hami-plugin-nvidia"
    assert prepare.attributes["k8s.pod.name"] == "hami-style"
    assert prepare.attributes["hami.dra.memory_mib"] == [3000]


def test_the_kubelet_stand_in_process_prepares_and_unprepares_a_pods_claim(
    kube_cluster: Cluster, kube_namespace: str, fake_nodes: Nodes
) -> None:
    """``python -m hami_e2e.kubelet --dra`` (what ``./just cluster-up --dra`` runs): it
    registers the node's driver on its own, prepares the claim of a pod bound to the node, logs
    what the driver answered, and unprepares the claim when the pod goes."""
    nodes = fake_nodes(_pool("dra-proc"))
    ns = kube_namespace

    async def main() -> None:
        async with kube_cluster.client() as kube:
            template = claim_template("share", memory="2000Mi", cores="20")
            drivers = await _setup(kube_cluster, kube, nodes, ns, [template])
            node = drivers.nodes[nodes[0]]
            kubelet = kubelet_process(kube_cluster, [(node.name, node.root)], dra=True)
            kubelet.start()
            try:

                async def logged(what: str) -> str | None:
                    kubelet.check()
                    lines = kubelet.log.read_text().splitlines() if kubelet.log.exists() else []
                    return next((x for x in lines if what in x), None)

                await eventually(lambda: logged("DRA driver gpu.hami.io registered"), 30,
                                 what="the stand-in registering the driver")  # fmt: skip
                await kube.create(PODS, claim_pod("p", "share", {"dra": "dra-proc"}), namespace=ns)
                line = await eventually(lambda: logged(f"NodePrepareResources for {ns}/p "), 60,
                                        what="the pod's claim prepared")  # fmt: skip
                assert f": {node.name}/gpu-" in line, line
                assert " share " in line, line
                assert "(CDI hami.io/gpu=" in line, line
                (spec,) = node.cdi_dir.glob("*.json")
                env = json.loads(spec.read_text())["devices"][0]["containerEdits"]["env"]
                assert env == ["CUDA_DEVICE_MEMORY_LIMIT_0=2000m"]
                await kube.delete(PODS, "p", namespace=ns)
                await eventually(lambda: logged(f"NodeUnprepareResources for {ns}/p:"), 60,
                                 what="the pod's claim unprepared")  # fmt: skip
                assert not list(node.cdi_dir.glob("*.json"))
                assert "failed" not in kubelet.log.read_text()
            finally:
                kubelet.stop()
                drivers.stop()

    asyncio.run(main())
