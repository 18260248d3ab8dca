"""The shared in-memory API server answers a real KubeClient as the API server would."""

from __future__ import annotations

import asyncio

import pytest
from hami_common.k8s import (
    EVENTS,
    NODES,
    PODS,
    AlreadyExists,
    Conflict,
    KubeClient,
    NotFound,
)
from hami_common.k8s.testing import FakeApiServer


def _run(api: FakeApiServer, test):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        async with api.client() as kube:
            return await test(kube)

    return asyncio.run(main())


def test_lists_are_paged_filtered_and_scoped() -> None:
    api = FakeApiServer()
    for i in range(5):
        labels = {"hami.io/vgpu-node": "n1"} if i % 2 == 0 else {}
        meta = {"name": f"p{i}", "namespace": "a" if i < 4 else "b", "labels": labels}
        api.add(PODS, {"metadata": meta, "spec": {"nodeName": f"n{i % 2}"}})

    async def test(kube: KubeClient) -> tuple[list[str], ...]:
        def names(listed: dict[str, object]) -> list[str]:
            return [p["metadata"]["name"] for p in listed["items"]]  # type: ignore[attr-defined, index]

        return (
            names(await kube.list(PODS, page_size=2)),
            names(await kube.list(PODS, namespace="a")),
            names(await kube.list(PODS, label_selector="hami.io/vgpu-node")),
            names(await kube.list(PODS, label_selector="!hami.io/vgpu-node")),
            names(await kube.list(PODS, field_selector="spec.nodeName=n1")),
        )

    every, in_a, labelled, unlabelled, on_n1 = _run(api, test)
    assert every == ["p0", "p1", "p2", "p3", "p4"]
    assert in_a == ["p0", "p1", "p2", "p3"]
    assert labelled == ["p0", "p2", "p4"]
    assert unlabelled == ["p1", "p3"]
    assert on_n1 == ["p1", "p3"]
    assert sum("continue=" in url for _, url in api.requests) == 2  # three pages of two


def test_writes_keep_resource_versions_and_answer_conflicts() -> None:
    api = FakeApiServer()
    api.add(NODES, {"metadata": {"name": "n1", "annotations": {"a": "1"}}})

    async def test(kube: KubeClient) -> dict[str, object]:
        node = await kube.get(NODES, "n1", metadata_only=True)
        assert node["kind"] == "PartialObjectMetadata"
        rv = node["metadata"]["resourceVersion"]
        await kube.patch(NODES, "n1", {"metadata": {"resourceVersion": rv, "annotations": {
            "a": None, "b": "2"}}})  # fmt: skip
        with pytest.raises(Conflict):
            await kube.patch(NODES, "n1", {"metadata": {"resourceVersion": rv}})
        with pytest.raises(AlreadyExists):
            await kube.create(NODES, {"metadata": {"name": "n1"}})
        event = await kube.create(EVENTS, {"metadata": {"generateName": "p."}}, namespace="ns")
        assert event["metadata"]["name"].startswith("p.")
        await kube.delete(NODES, "n1")
        with pytest.raises(NotFound):
            await kube.get(NODES, "n1")
        return node

    _run(api, test)
    assert api.patches == [("nodes", "n1", {"metadata": {"annotations": {"a": None, "b": "2"}}})]
    assert [e["metadata"]["generateName"] for e in api.of("events")] == ["p."]


def test_a_binding_sets_the_node_and_copies_its_metadata_once() -> None:
    api = FakeApiServer()
    api.add(PODS, {"metadata": {"name": "p", "namespace": "ns"}, "spec": {}})
    binding = {"metadata": {"name": "p", "annotations": {"x": "1"}, "labels": {"l": "v"}},
               "target": {"kind": "Node", "name": "n1"}}  # fmt: skip

    async def test(kube: KubeClient) -> None:
        await kube.create(PODS, binding, namespace="ns", name="p", subresource="binding")
        with pytest.raises(Conflict):
            await kube.create(PODS, binding, namespace="ns", name="p", subresource="binding")

    _run(api, test)
    pod = api.obj(PODS, "p", "ns")
    assert pod["spec"]["nodeName"] == "n1"
    assert (pod["metadata"]["annotations"], pod["metadata"]["labels"]) == ({"x": "1"}, {"l": "v"})
