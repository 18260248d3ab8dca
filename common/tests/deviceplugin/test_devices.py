"""Virtual IDs, the device table, the fake backend's spec and the registrar's patch policy."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest
from hami_common.deviceplugin.backend import BackendInitError, HealthChange, Link
from hami_common.deviceplugin.devices import DeviceTable, physical_id, virtual_ids
from hami_common.deviceplugin.registrar import NodeRegistrar
from hami_common.deviceplugin.testing import FakeBackend, SpecError, device_spec
from hami_common.k8s import NODES, ClusterConfig, KubeClient
from hami_common.k8s.testing import FakeApiServer


def test_virtual_and_physical_ids() -> None:
    uuid = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"
    ids = virtual_ids(uuid, 3)
    assert ids == [f"{uuid}-0", f"{uuid}-1", f"{uuid}-2"]
    assert {physical_id(i, [uuid]) for i in ids} == {uuid}
    assert physical_id(f"{uuid}::4") == uuid
    assert physical_id(uuid, [uuid]) == uuid
    assert physical_id("MIG-abc", [uuid]) == "MIG-abc"


def test_table_lists_and_versions_health() -> None:
    backend = FakeBackend(device_spec(2, node="t", numa_nodes=2))

    async def main() -> None:
        table = DeviceTable(backend.discover(), 2, numa=True)
        listed = table.list_response()
        assert [(d.ID, d.health, d.topology.nodes[0].ID) for d in listed.devices] == [
            ("GPU-t-0000-0", "Healthy", 0),
            ("GPU-t-0000-1", "Healthy", 0),
            ("GPU-t-0001-0", "Healthy", 1),
            ("GPU-t-0001-1", "Healthy", 1),
        ]
        waiter = asyncio.create_task(table.wait_change(table.version))
        assert await table.apply(HealthChange("GPU-t-0001", False, "XID 79"))
        assert await asyncio.wait_for(waiter, 5) == 1
        assert not await table.apply(HealthChange("GPU-t-0001", False, "XID 79"))
        assert not await table.apply(HealthChange("GPU-unknown", False))
        assert [d.health for d in table.list_response().devices][2:] == ["Unhealthy"] * 2
        assert table.get("GPU-t-0001") is not None
        assert table.get("GPU-t-0001").reason == "XID 79"  # type: ignore[union-attr]

    asyncio.run(main())


def test_fake_backend_failures_and_links() -> None:
    spec = device_spec(3, node="f", nvlinks=1)
    spec["devices"][1]["fail"] = "links"
    spec["devices"][2]["fail"] = "health"
    backend = FakeBackend(spec)
    devices = backend.discover()
    links = backend.links(devices)
    assert links[("GPU-f-0000", "GPU-f-0002")] == Link("SameBoard", 1)
    assert ("GPU-f-0001", "GPU-f-0000") not in links

    async def first() -> HealthChange:
        async for change in backend.health_events(devices):
            return change
        raise AssertionError("no event")

    change = asyncio.run(first())
    assert (change.uuid, change.healthy) == ("GPU-f-0002", False)
    with pytest.raises(BackendInitError, match="no driver"):
        FakeBackend({"devices": [], "init_error": "no driver"}).discover()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"devices": "x"}, "expected a list of devices"),
        ([{"index": 0}], r"devices\[0\]: needs a string 'uuid'"),
        ([{"uuid": "a", "fail": "boom"}], r"devices\[0\].fail: 'boom' is not"),
    ],
)
def test_spec_errors_name_the_device(spec: object, message: str, tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(SpecError, match=message):
        FakeBackend(spec_path=path)


def test_health_follows_the_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    spec = device_spec(2, node="h")
    path.write_text(json.dumps(spec))
    backend = FakeBackend(spec_path=path, poll=0.02)

    async def main() -> list[HealthChange]:
        events = backend.health_events(backend.discover())
        spec["devices"][1]["healthy"] = False
        path.write_text(json.dumps(spec))
        got = [await asyncio.wait_for(anext(events), 5)]
        spec["devices"][1]["healthy"] = True
        path.write_text(json.dumps(spec))
        got.append(await asyncio.wait_for(anext(events), 5))
        await events.aclose()  # type: ignore[attr-defined]
        return got

    assert [(c.uuid, c.healthy) for c in asyncio.run(main())] == [
        ("GPU-h-0001", False),
        ("GPU-h-0001", True),
    ]


def test_registrar_patches_only_changes_and_rewrites_deleted_annotations() -> None:
    kube = FakeApiServer()
    kube.add(NODES, {"metadata": {"name": "n1", "annotations": {"other": "x"}}})
    table = DeviceTable([], 1, numa=False)
    desired = {"hami.io/node-nvidia-register": "[]", "hami.io/node-nvidia-score": "[]"}
    registrar = NodeRegistrar(kube.client(), "n1", table, lambda: dict(desired))

    async def main() -> None:
        assert await registrar.sync_once()
        assert not await registrar.sync_once()
        node = kube.obj(NODES, "n1")["metadata"]["annotations"]
        del node["hami.io/node-nvidia-register"]
        assert await registrar.sync_once()
        desired["hami.io/node-nvidia-score"] = '[{"uuid":"a","score":{}}]'
        assert await registrar.sync_once()

    asyncio.run(main())
    assert [p[2]["metadata"]["annotations"] for p in kube.patches] == [
        desired | {"hami.io/node-nvidia-score": "[]"},
        {"hami.io/node-nvidia-register": "[]"},
        {"hami.io/node-nvidia-score": '[{"uuid":"a","score":{}}]'},
    ]
    assert kube.obj(NODES, "n1")["metadata"]["annotations"]["other"] == "x"


def test_a_refusing_api_server_makes_one_line_per_failed_registration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each failed pass is one warning line (URL, status, what to check), and the passes slow
    down to the ``retry`` cap instead of coming every ``retry`` seconds forever."""
    seen: list[httpx.Request] = []
    six = asyncio.Event()

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 6:
            six.set()
        return httpx.Response(401, json={"kind": "Status", "code": 401, "reason": "Unauthorized"})

    kube = KubeClient(
        ClusterConfig(server="https://k8s.test"), transport=httpx.MockTransport(refuse)
    )
    table = DeviceTable([], 1, numa=False)
    registrar = NodeRegistrar(kube, "n1", table, dict, retry=0.05)
    registrar_log = "hami_common.deviceplugin.registrar"

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(registrar.run(stop))
        await six.wait()
        stop.set()
        await task
        await kube.aclose()

    with caplog.at_level(logging.WARNING, logger=registrar_log):
        asyncio.run(main())
    lines = [r for r in caplog.records if r.name == registrar_log]
    assert len(lines) == len(seen)
    for n, record in enumerate(lines, start=1):
        text = record.getMessage()
        assert record.exc_info is None
        assert text.startswith(
            f"node n1: registration failed ({n} in a row): GET https://k8s.test/api/v1/nodes/n1: "
            "HTTP 401 Unauthorized: "
        )
        assert "the API server refused our credentials" in text
        assert float(text.rsplit("retrying in ", 1)[1].removesuffix("s")) <= 0.05
