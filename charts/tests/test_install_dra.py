"""The umbrella chart installed with ``global.dra.enabled`` into the real control plane: the API
server accepts the DeviceClass and the RBAC, and each component's own calls on the DRA path,
made under its chart-made ServiceAccount, are allowed (the driver publishing and updating its
node's ResourceSlice and reading a claim, the webhook creating a claim template in a pod's
namespace, the extender explaining a DRA pod from its claim), while what they never do is
refused; and the README's example pod placed through a claim by the release's webhook and DRA
driver."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hami_common.dra import slices
from hami_common.dra.testing import allocated_claim
from hami_common.k8s import (
    DEVICE_CLASSES,
    NAMESPACES,
    PODS,
    RESOURCE_CLAIM_TEMPLATES,
    RESOURCE_CLAIMS,
    RESOURCE_SLICES,
    Forbidden,
)
from hami_e2e.backend import Cluster
from hami_e2e.charts.objects import assert_never_refused, client, device_namespace, example_pod
from hami_e2e.charts.release import ChartStack
from hami_e2e.dra import PAUSE, claim_template
from hami_e2e.nodes import NodePool, create_nodes, delete_nodes
from hami_e2e.waiting import eventually
from hami_extender.dra_explain import explain_dra
from hami_webhook.dra import KubeTemplateSink

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
Json = dict[str, Any]
POOL = NodePool(name="chart-dra", count=1, devices_per_node=2, labels={})
NODE = POOL.node_names()[0]
DRIVER = "gpu.hami.io"
ACCOUNTS = ("hami-device-plugin", "hami-webhook", "hami-extender")


@pytest.fixture(scope="module")
def stack(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartStack]:
    chart = ChartStack(kube_cluster, tmp_path_factory.mktemp("chart-dra"))

    async def up() -> None:
        async with kube_cluster.client() as kube:
            await create_nodes(kube, [POOL])
            chart.install({"global": {"dra": {"enabled": True}}, "monitor": {"enabled": False}})
            for account in ACCOUNTS:
                await chart.account(kube, account)

    async def down() -> None:
        async with kube_cluster.client() as kube:
            await delete_nodes(kube, POOL)
            with contextlib.suppress(Exception):
                await kube.delete(RESOURCE_SLICES, slices.slice_name(NODE, DRIVER))

    try:
        asyncio.run(up())
        yield chart
    finally:
        chart.stop()
        with contextlib.suppress(Exception):
            chart.uninstall()
        asyncio.run(down())


def test_each_component_may_make_its_dra_calls_and_no_more(
    stack: ChartStack, kube_cluster: Cluster
) -> None:
    ns = f"chart-dra-{stack.label}"

    async def run() -> None:
        async with kube_cluster.client() as admin:
            assert (await admin.get(DEVICE_CLASSES, DRIVER))["spec"]["selectors"]
            await admin.create(NAMESPACES, {"metadata": {"name": ns}})
            claim = allocated_claim("p-gpu", namespace=ns, driver=DRIVER, pool=NODE,
                                    devices=[("gpu-0", {})])  # fmt: skip
            del claim["status"]  # an allocation needs kube-scheduler: not this test's part
            claim["spec"] = {"devices": {"requests": [
                {"name": "gpu", "exactly": {"deviceClassName": DRIVER}}]}}  # fmt: skip
            await admin.create(RESOURCE_CLAIMS, claim, namespace=ns)
            pod = {"metadata": {"name": "p"}, "spec": {
                "schedulerName": "nobody",  # stays pending: its claim stays unallocated
                "resourceClaims": [{"name": "gpu", "resourceClaimName": "p-gpu"}],
                "containers": [{"name": "c", "image": PAUSE,
                                "resources": {"claims": [{"name": "gpu"}]}}]}}  # fmt: skip
            await admin.create(PODS, pod, namespace=ns)
        async with client(stack.kubeconfigs["hami-device-plugin"]) as plugin:
            made = await slices.publish(plugin, NODE, DRIVER, [{"name": "gpu-0"}])
            assert made["spec"]["nodeName"] == NODE
            updated = await slices.publish(plugin, NODE, DRIVER,
                                           [{"name": "gpu-0"}, {"name": "gpu-1"}])  # fmt: skip
            assert updated["spec"]["pool"]["generation"] == 2
            assert (await plugin.get(RESOURCE_CLAIMS, "p-gpu", namespace=ns))["metadata"]
            with pytest.raises(Forbidden):
                await plugin.delete(RESOURCE_SLICES, made["metadata"]["name"])
            with pytest.raises(Forbidden):
                await plugin.list(RESOURCE_CLAIMS, namespace=ns)
        async with client(stack.kubeconfigs["hami-webhook"]) as webhook:
            sink = KubeTemplateSink(webhook)
            await sink.ensure(ns, claim_template("hami-gpu-1x"))
            await sink.ensure(ns, claim_template("hami-gpu-1x"))  # exists: kept
            with pytest.raises(Forbidden):
                await webhook.get(RESOURCE_CLAIM_TEMPLATES, "hami-gpu-1x", namespace=ns)
            with pytest.raises(Forbidden):
                await webhook.get(RESOURCE_CLAIMS, "p-gpu", namespace=ns)
        async with client(stack.kubeconfigs["hami-extender"]) as extender:
            explained = await explain_dra(extender, ns, "p", lambda _: False)
            assert explained is not None
            assert explained["claims"][0]["state"] == "not allocated"
            with pytest.raises(Forbidden):
                await extender.create(RESOURCE_CLAIM_TEMPLATES, claim_template("x"), namespace=ns)
        async with kube_cluster.client() as admin:
            await admin.delete(NAMESPACES, ns)

    asyncio.run(run())


def test_the_example_pod_is_placed_through_a_claim_by_the_chart_components(
    stack: ChartStack, kube_cluster: Cluster
) -> None:
    """The release's webhook (``--dra``) turns the README's example pod into a claim, the
    cluster's kube-scheduler allocates it on the ResourceSlice the release's plugin published as
    the DRA driver, and the driver prepares it for kubelet's stand-in, writing the CDI spec into
    the CDI folder the chart mounts; no component is refused."""

    async def run() -> None:
        async with kube_cluster.client() as kube:
            await stack.start_service(kube, "hami-webhook", container="webhook",
                                      port=stack.webhook_port, ready="/readyz")  # fmt: skip
            host = await stack.start_dra_node(kube, NODE, "hami-device-plugin")
            ns = await device_namespace(kube, stack, f"chart-dra-pod-{stack.label}")
            created = await kube.create(PODS, example_pod("first"), namespace=ns)
            assert created["spec"]["resourceClaims"], created["spec"]

            async def prepared() -> list[Path]:
                for proc in stack.processes.values():
                    proc.check()
                return list((host / "var/run/cdi").glob("*.json"))

            (spec,) = await eventually(prepared, 60, what="the pod's claim prepared")
            devices = json.loads(spec.read_text())["devices"]
            assert devices[0]["containerEdits"]["env"] == ["CUDA_DEVICE_MEMORY_LIMIT_0=3000m"]
            pod = await kube.get(PODS, "first", namespace=ns)
            assert pod["spec"]["nodeName"] == NODE

    asyncio.run(run())
    assert_never_refused(stack)
