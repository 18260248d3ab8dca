"""The control plane schedules, runs and accounts for pods like a real cluster."""

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from hami_common.k8s import NODES, PODS, RESOURCE_QUOTAS, Forbidden, KubeClient
from hami_e2e.backend import Cluster
from hami_e2e.build import BINARIES, JaegerLayout, Layout
from hami_e2e.cluster import ClusterError, LocalCluster
from hami_e2e.nodes import NodePool


def pause_pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {
        "name": "c",
        "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "64Mi"}},
    }
    return {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}


async def wait_for(
    kube: KubeClient, name: str, ns: str, ok: Any, within: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        obj = await kube.get(PODS, name, namespace=ns)
        if ok(obj):
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {ns}/{name} did not get there: {obj.get('status')}")
        await asyncio.sleep(0.2)


@pytest.mark.e2e
def test_plain_pod_is_scheduled_to_a_kwok_node_and_runs(
    kube_cluster: Cluster, kube_namespace: str, fake_nodes: Any
) -> None:
    nodes = fake_nodes(NodePool(name="plain", count=2, devices_per_node=0))

    async def main() -> dict[str, Any]:
        async with kube_cluster.client() as kube:
            await kube.create(PODS, pause_pod("web"), namespace=kube_namespace)
            return await wait_for(
                kube, "web", kube_namespace, lambda p: p["status"].get("phase") == "Running"
            )

    pod = asyncio.run(main())
    assert pod["spec"]["nodeName"] in nodes  # bound by kube-scheduler
    assert pod["status"]["podIP"].startswith("10.244.")  # kwok's pod CIDR
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["PodScheduled"] == "True"
    assert conditions["Ready"] == "True"


@pytest.mark.e2e
def test_pod_that_fits_nowhere_stays_pending_with_the_schedulers_reason(
    kube_cluster: Cluster, kube_namespace: str, fake_nodes: Any
) -> None:
    fake_nodes(NodePool(name="small", count=1, devices_per_node=0, cpu="1"))

    async def main() -> dict[str, Any]:
        async with kube_cluster.client() as kube:
            huge = pause_pod("huge", nodeSelector={"e2e.hami.io/pool": "small"})
            huge["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "2"
            await kube.create(PODS, huge, namespace=kube_namespace)
            return await wait_for(
                kube,
                "huge",
                kube_namespace,
                lambda p: any(
                    c["type"] == "PodScheduled" for c in p["status"].get("conditions", [])
                ),
            )

    pod = asyncio.run(main())
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert pod["status"]["phase"] == "Pending"
    assert cond["reason"] == "Unschedulable"
    assert "Insufficient cpu" in cond["message"]


@pytest.mark.e2e
def test_resource_quota_status_is_maintained_by_the_controller_manager(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    quota = {
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "2", "requests.cpu": "1"}},
    }

    async def main() -> dict[str, Any]:
        async with kube_cluster.client() as kube:
            await kube.create(RESOURCE_QUOTAS, quota, namespace=kube_namespace)
            # The quota controller computes `status.used`; only then are pods admitted.
            deadline = time.monotonic() + 60
            while True:
                q = await kube.get(RESOURCE_QUOTAS, "q", namespace=kube_namespace)
                if q.get("status", {}).get("used"):
                    break
                assert time.monotonic() < deadline, "quota status never computed"
                await asyncio.sleep(0.2)
            assert q["status"]["used"]["pods"] == "0"
            await kube.create(PODS, pause_pod("a"), namespace=kube_namespace)
            while True:
                q = await kube.get(RESOURCE_QUOTAS, "q", namespace=kube_namespace)
                if q["status"]["used"]["pods"] == "1":
                    return q
                assert time.monotonic() < deadline, f"quota usage not updated: {q['status']}"
                await asyncio.sleep(0.2)

    q = asyncio.run(main())
    assert q["status"]["hard"] == {"pods": "2", "requests.cpu": "1"}
    assert q["status"]["used"]["requests.cpu"] == "100m"


@pytest.mark.e2e
def test_resource_quota_admission_rejects_pods_over_the_limit(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    async def main() -> None:
        async with kube_cluster.client() as kube:
            quota = {"metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "150m"}}}
            await kube.create(RESOURCE_QUOTAS, quota, namespace=kube_namespace)
            deadline = time.monotonic() + 60
            while (
                not (await kube.get(RESOURCE_QUOTAS, "q", namespace=kube_namespace))
                .get("status", {})
                .get("used")
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            await kube.create(PODS, pause_pod("first"), namespace=kube_namespace)
            with pytest.raises(Forbidden, match="exceeded quota"):
                await kube.create(PODS, pause_pod("second"), namespace=kube_namespace)

    asyncio.run(main())


@pytest.mark.e2e
def test_kwok_nodes_carry_the_pool_spec(kube_cluster: Cluster, fake_nodes: Any) -> None:
    pool = NodePool(
        name="gpu",
        count=2,
        devices_per_node=8,
        numa_nodes=2,
        labels={"gpu": "on", "zone": "a"},
        extended_resources={"nvidia.com/gpu": "80"},
    )
    names = fake_nodes(pool)

    async def main() -> list[dict[str, Any]]:
        async with kube_cluster.client() as kube:
            return [await kube.get(NODES, n) for n in names]

    for node in asyncio.run(main()):
        assert node["metadata"]["labels"]["gpu"] == "on"
        assert node["metadata"]["labels"]["zone"] == "a"
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "80"
        assert any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )


def test_a_component_that_dies_at_start_is_named_with_its_log_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    lay = Layout(tmp_path / "bin-cache")
    lay.bin.mkdir(parents=True)
    for name in BINARIES:
        script = lay.binary(name)
        script.write_text("#!/bin/sh\necho 'etcdmain: unknown flag --nope' >&2\nexit 2\n")
        script.chmod(0o755)
    lay.stages.write_text("")
    lay.marker.write_text("{}")
    jaeger = _fake_jaeger(tmp_path)
    cluster = LocalCluster(tmp_path / "run", binaries=lay, jaeger_binary=jaeger)
    with pytest.raises(ClusterError, match=r"etcd exited with code 2(.|\n)*unknown flag --nope"):
        cluster.start()
    assert cluster.processes == []
    assert (tmp_path / "run" / "logs" / "etcd.log").exists()


def _fake_jaeger(tmp_path: Path) -> JaegerLayout:
    jaeger = JaegerLayout(tmp_path / "jaeger-cache", "v0", "1")
    jaeger.binary.parent.mkdir(parents=True)
    jaeger.binary.write_text("#!/bin/sh\nsleep 60\n")
    jaeger.binary.chmod(0o755)
    jaeger.marker.write_text("{}")
    return jaeger


def test_missing_binaries_say_how_to_build_them(tmp_path: Path) -> None:
    cluster = LocalCluster(
        tmp_path, binaries=Layout(tmp_path / "nothing"), jaeger_binary=_fake_jaeger(tmp_path)
    )
    with pytest.raises(ClusterError, match=r"`\./just build-cluster`"):
        cluster.start()


def test_a_missing_trace_store_says_how_to_build_it(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "bin-cache")
    lay.bin.mkdir(parents=True)
    for name in BINARIES:
        lay.binary(name).write_text("#!/bin/sh\nexit 2\n")
        lay.binary(name).chmod(0o755)
    lay.stages.write_text("")
    lay.marker.write_text("{}")
    missing = JaegerLayout(tmp_path / "no-jaeger", "v0", "1")
    cluster = LocalCluster(tmp_path / "run", binaries=lay, jaeger_binary=missing)
    with pytest.raises(ClusterError, match=r"trace store is not built.*`\./just build-cluster`"):
        cluster.start()
    assert cluster.processes == []
