"""An in-memory stand-in for the few `KubeClient` verbs the allocator uses (unit tests only;
the same flows run against the real API server in e2e/tests/test_deviceplugin.py)."""

from __future__ import annotations

import copy
from typing import Any

from hami_common.k8s import EVENTS, NODES, PODS, Conflict, NotFound, Resource

Json = dict[str, Any]


def _merge(target: Json, patch: Json) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _answer(obj: Json, metadata_only: bool) -> Json:
    """The object, or as the real server answers ``as=PartialObjectMetadata``: callers that
    asked for metadata only must not read anything else."""
    if metadata_only:
        meta = copy.deepcopy(obj["metadata"])
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    return copy.deepcopy(obj)


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], Json] = {}
        self.events: list[Json] = []
        self.patches: list[tuple[str, str, Json]] = []
        self._rv = 0

    def _bump(self, obj: Json) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)

    def add(self, resource: Resource, obj: Json) -> None:
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {}).setdefault("annotations", {})
        self._bump(obj)
        meta = obj["metadata"]
        self.objects[(resource.plural, meta.get("namespace"), meta["name"])] = obj

    def obj(self, resource: Resource, name: str, namespace: str | None = None) -> Json:
        return self.objects[(resource.plural, namespace, name)]

    async def get(
        self, resource: Resource, name: str, *, namespace: str | None = None,
        metadata_only: bool = False,
    ) -> Json:  # fmt: skip
        try:
            obj = self.objects[(resource.plural, namespace, name)]
        except KeyError:
            raise NotFound(f'{resource.plural} "{name}" not found', status=404) from None
        return _answer(obj, metadata_only)

    async def list(self, resource: Resource, *, field_selector: str | None = None) -> Json:
        assert resource == PODS
        node = (field_selector or "").removeprefix("spec.nodeName=")
        items = [
            copy.deepcopy(o)
            for (plural, _, _), o in self.objects.items()
            if plural == "pods" and o.get("spec", {}).get("nodeName") == node
        ]
        return {"items": items, "metadata": {"resourceVersion": str(self._rv)}}

    async def patch(
        self, resource: Resource, name: str, patch: Json, *, namespace: str | None = None,
        metadata_only: bool = False,
    ) -> Json:  # fmt: skip
        assert resource in (PODS, NODES)
        current = self.objects.get((resource.plural, namespace, name))
        if current is None:
            raise NotFound(f'{resource.plural} "{name}" not found', status=404)
        patch = copy.deepcopy(patch)
        rv = patch.get("metadata", {}).pop("resourceVersion", None)
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified", status=409)
        _merge(current, patch)
        self._bump(current)
        self.patches.append((resource.plural, name, patch))
        return _answer(current, metadata_only)

    async def create(self, resource: Resource, body: Json, *, namespace: str | None = None) -> Json:
        assert resource == EVENTS
        self.events.append(body)
        return body
