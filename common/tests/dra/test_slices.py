"""The node's ResourceSlice: created with the Node as owner, left alone when unchanged,
replaced with the next pool generation when the devices change."""

from __future__ import annotations

import asyncio

from hami_common.dra import slices
from hami_common.k8s import NODES, RESOURCE_SLICES
from hami_common.k8s.testing import FakeApiServer

DEVICES: list[dict[str, object]] = [{"name": "gpu-0", "capacity": {"memory": {"value": "1024Mi"}}}]


def test_publish_creates_then_updates_only_on_change() -> None:
    api = FakeApiServer()
    api.add(NODES, {"metadata": {"name": "n1", "uid": "node-uid"}})

    async def body() -> None:
        async with api.client() as client:
            created = await slices.publish(client, "n1", "gpu.hami.io", DEVICES)
            assert created["metadata"]["name"] == "n1-gpu-hami-io"
            assert created["metadata"]["ownerReferences"][0]["uid"] == "node-uid"
            spec = created["spec"]
            assert (spec["driver"], spec["nodeName"], spec["pool"]) == (
                "gpu.hami.io", "n1", {"name": "n1", "generation": 1, "resourceSliceCount": 1}
            )  # fmt: skip
            # the API server rewrites quantities: the digest, not the devices, decides
            api.obj(RESOURCE_SLICES, "n1-gpu-hami-io")["spec"]["devices"][0]["capacity"] = {
                "memory": {"value": "1Gi"}
            }
            writes = len(api.requests)
            await slices.publish(client, "n1", "gpu.hami.io", DEVICES)
            assert [m for m, _ in api.requests[writes:]] == ["GET"]
            changed: list[dict[str, object]] = [*DEVICES, {"name": "gpu-1"}]
            updated = await slices.publish(client, "n1", "gpu.hami.io", changed)
            assert updated["spec"]["pool"]["generation"] == 2
            assert updated["spec"]["devices"] == changed
            assert updated["metadata"]["ownerReferences"][0]["uid"] == "node-uid"

    asyncio.run(body())
