"""hami_common.k8s against the real kube-apiserver: verbs, patch types, errors, watches."""

import asyncio
from typing import Any

import pytest
from hami_common.k8s import (
    CONFIG_MAPS,
    EVENTS,
    NAMESPACES,
    PODS,
    AlreadyExists,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    list_then_watch,
    watch,
)
from hami_e2e.backend import Cluster

pytestmark = pytest.mark.e2e


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"t": "adapter"}}, "data": data}


def test_crud_and_error_vocabulary(kube_cluster: Cluster, kube_namespace: str) -> None:
    ns = kube_namespace

    async def main() -> None:
        async with kube_cluster.client() as kube:
            made = await kube.create(CONFIG_MAPS, cm("a", k="1"), namespace=ns)
            assert made["metadata"]["resourceVersion"]
            with pytest.raises(AlreadyExists):
                await kube.create(CONFIG_MAPS, cm("a"), namespace=ns)
            with pytest.raises(NotFound) as nf:
                await kube.get(CONFIG_MAPS, "absent", namespace=ns)
            assert nf.value.status == 404
            assert 'configmaps "absent" not found' in nf.value.message
            # replace is compare-and-swap on resourceVersion
            stale = dict(made, data={"k": "2"})
            await kube.replace(CONFIG_MAPS, stale, namespace=ns)
            with pytest.raises(Conflict):
                await kube.replace(CONFIG_MAPS, dict(made, data={"k": "3"}), namespace=ns)
            with pytest.raises(Invalid) as inv:
                await kube.create(CONFIG_MAPS, cm("Not_A_Name"), namespace=ns)
            assert inv.value.details["causes"][0]["field"] == "metadata.name"
            current = await kube.get(CONFIG_MAPS, "a", namespace=ns)
            with pytest.raises(Conflict):  # delete precondition on an old version
                await kube.delete(CONFIG_MAPS, "a", namespace=ns, resource_version="1")
            await kube.delete(
                CONFIG_MAPS,
                "a",
                namespace=ns,
                resource_version=current["metadata"]["resourceVersion"],
            )
            with pytest.raises(NotFound):
                await kube.get(CONFIG_MAPS, "a", namespace=ns)
            with pytest.raises(Forbidden):
                await kube.request("GET", NAMESPACES.path(), headers={"Impersonate-User": "nobody"})
            version = await kube.version()
            assert version["gitVersion"].startswith("v1.")

    asyncio.run(main())


def test_merge_strategic_and_json_patches(kube_cluster: Cluster, kube_namespace: str) -> None:
    ns = kube_namespace
    pod = {
        "metadata": {"name": "p", "labels": {"a": "1"}},
        "spec": {
            "nodeName": "nowhere",  # never runs: only the object matters here
            "containers": [
                {"name": "c1", "image": "registry.k8s.io/pause:3.10"},
                {"name": "c2", "image": "registry.k8s.io/pause:3.10"},
            ],
        },
    }

    async def main() -> dict[str, Any]:
        async with kube_cluster.client() as kube:
            await kube.create(PODS, pod, namespace=ns)
            await kube.patch(PODS, "p", {"metadata": {"labels": {"b": "2"}}}, namespace=ns)
            # strategic merge: containers merge by name, c2 untouched
            await kube.patch(
                PODS,
                "p",
                {
                    "spec": {
                        "activeDeadlineSeconds": 600,
                        "containers": [{"name": "c1", "image": "registry.k8s.io/pause:3.9"}],
                    }
                },
                namespace=ns,
                patch_type="strategic",
            )
            await kube.patch(
                PODS,
                "p",
                [
                    {"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}},
                    {"op": "test", "path": "/metadata/labels/a", "value": "1"},
                ],
                namespace=ns,
                patch_type="json",
            )
            with pytest.raises(Invalid):  # a failed json-patch test op
                await kube.patch(
                    PODS,
                    "p",
                    [{"op": "test", "path": "/metadata/labels/a", "value": "0"}],
                    namespace=ns,
                    patch_type="json",
                )
            return await kube.get(PODS, "p", namespace=ns)

    got = asyncio.run(main())
    assert got["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert got["metadata"]["annotations"] == {"x": "y"}
    images = {c["name"]: c["image"] for c in got["spec"]["containers"]}
    assert images == {"c1": "registry.k8s.io/pause:3.9", "c2": "registry.k8s.io/pause:3.10"}


def test_metadata_only_list_and_watch(kube_cluster: Cluster, kube_namespace: str) -> None:
    ns = kube_namespace

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with kube_cluster.client() as kube:
            for i in range(3):
                await kube.create(CONFIG_MAPS, cm(f"m{i}", big="x" * 1000), namespace=ns)
            listed = await kube.list_metadata(
                CONFIG_MAPS, namespace=ns, label_selector="t=adapter", page_size=2
            )
            rv = listed["metadata"]["resourceVersion"]

            async def first_event() -> dict[str, Any]:
                async for event in kube.watch(
                    CONFIG_MAPS, namespace=ns, resource_version=rv, metadata_only=True
                ):
                    if event.type == "ADDED":
                        return event.object
                raise AssertionError("watch ended")

            task = asyncio.create_task(first_event())
            await asyncio.sleep(0.3)
            await kube.create(CONFIG_MAPS, cm("m3", big="y"), namespace=ns)
            return listed, await asyncio.wait_for(task, 30)

    listed, added = asyncio.run(main())
    assert listed["kind"] == "PartialObjectMetadataList"
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["m0", "m1", "m2"]
    assert all("data" not in i for i in listed["items"])
    assert added["kind"] == "PartialObjectMetadata"
    assert added["metadata"]["name"] == "m3"
    assert "data" not in added


def test_metadata_only_get_and_patch(kube_cluster: Cluster, kube_namespace: str) -> None:
    """The node lock's reads and writes ask for metadata only; the real server answers them
    without spec, data or status, and the patch still lands whole."""
    ns = kube_namespace

    async def main() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with kube_cluster.client() as kube:
            await kube.create(CONFIG_MAPS, cm("meta", big="x" * 1000), namespace=ns)
            got = await kube.get(CONFIG_MAPS, "meta", namespace=ns, metadata_only=True)
            rv = got["metadata"]["resourceVersion"]
            patch = {"metadata": {"resourceVersion": rv, "annotations": {"lock": "mine"}}}
            patched = await kube.patch(CONFIG_MAPS, "meta", patch, namespace=ns,
                                       metadata_only=True)  # fmt: skip
            return got, patched, await kube.get(CONFIG_MAPS, "meta", namespace=ns)

    got, patched, whole = asyncio.run(main())
    assert got["kind"] == patched["kind"] == "PartialObjectMetadata"
    assert "data" not in got
    assert "data" not in patched
    assert patched["metadata"]["annotations"] == {"lock": "mine"}
    assert whole["data"]["big"] == "x" * 1000
    assert whole["metadata"]["annotations"] == {"lock": "mine"}


def test_an_expired_resource_version_is_gone(kube_cluster: Cluster, kube_namespace: str) -> None:
    # Events bypass the API server's watch cache (a default cluster's setting), so a watch from
    # a compacted resourceVersion reaches etcd and expires there, as any watch does eventually.
    ns = kube_namespace
    event = {
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "x", "namespace": ns},
        "reason": "Test",
        "message": "m",
        "type": "Normal",
    }

    async def main() -> None:
        async with kube_cluster.client() as kube:
            old = (await kube.create(EVENTS, event, namespace=ns))["metadata"]["resourceVersion"]
            for i in range(2):
                await kube.patch(EVENTS, "e", {"message": f"m{i}"}, namespace=ns)
            kube_cluster.compact_storage()
            async for _ in watch(kube, EVENTS, namespace=ns, resource_version=old):
                pass

    with pytest.raises(Gone):
        asyncio.run(main())


def test_list_then_watch_sees_sync_then_changes(kube_cluster: Cluster, kube_namespace: str) -> None:
    ns = kube_namespace

    async def main() -> list[tuple[str, str]]:
        async with kube_cluster.client() as kube:
            await kube.create(CONFIG_MAPS, cm("before"), namespace=ns)
            seen: list[tuple[str, str]] = []

            async def consume() -> None:
                async for event in list_then_watch(
                    kube, CONFIG_MAPS, namespace=ns, label_selector="t=adapter"
                ):
                    if event.type == "SYNC":
                        seen.extend(("SYNC", i["metadata"]["name"]) for i in event.object["items"])
                    else:
                        seen.append((event.type, event.object["metadata"]["name"]))
                    if event.type == "DELETED":
                        return

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.5)
            await kube.create(CONFIG_MAPS, cm("after"), namespace=ns)
            await kube.patch(CONFIG_MAPS, "after", {"data": {"k": "v"}}, namespace=ns)
            await kube.delete(CONFIG_MAPS, "after", namespace=ns)
            await asyncio.wait_for(task, 30)
            return seen

    assert asyncio.run(main()) == [
        ("SYNC", "before"),
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "after"),
    ]
