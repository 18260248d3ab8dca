"""One in-memory Kubernetes API server for the unit tests of every package.

`FakeApiServer` answers the requests of a real `KubeClient` (through an ``httpx.MockTransport``,
so the adapter's own request, error and retry code runs) the way the API server does for the
few things our services use:

- GET, and lists paged with ``limit``/``continue``, with equality and existence label
  selectors and the field selectors ``metadata.name``, ``metadata.namespace``, ``spec.nodeName``;
- metadata-only answers (``as=PartialObjectMetadata``);
- POST (``generateName``, ``AlreadyExists``) and the ``binding`` subresource, which copies the
  Binding's annotations and labels onto the pod (as 1.35+ does) and refuses a bound pod;
- PATCH (JSON merge patch; a ``metadata.resourceVersion`` in it is a precondition), PUT,
  DELETE (with a resourceVersion precondition), ``status`` patches;
- watches that stay open and send nothing.

End-to-end suites use the real API server instead; this is for unit tests only.

    api = FakeApiServer()
    api.add(NODES, {"metadata": {"name": "n1"}})
    async with api.client() as kube:
        await kube.patch(NODES, "n1", {"metadata": {"labels": {"a": "b"}}})
    assert api.obj(NODES, "n1")["metadata"]["labels"] == {"a": "b"}
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from hami_common.k8s.client import KubeClient
from hami_common.k8s.config import ClusterConfig
from hami_common.k8s.resources import Resource

Json = dict[str, Any]
METADATA_ONLY = "as=PartialObjectMetadata"


@dataclass(frozen=True)
class _Path:
    """A request path taken apart: ``/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]`` (or
    ``/apis/GROUP/VERSION/...``)."""

    prefix: str
    namespace: str | None
    plural: str
    name: str | None
    sub: str | None

    @classmethod
    def parse(cls, path: str) -> _Path | None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            prefix, rest = "/api/v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            prefix, rest = "/" + "/".join(parts[:3]), parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        name, sub = [*rest[1:], None, None][:2]
        return cls(prefix, namespace, rest[0], name, sub)

    @property
    def collection(self) -> str:
        ns = f"/namespaces/{self.namespace}" if self.namespace is not None else ""
        return f"{self.prefix}{ns}/{self.plural}"

    @property
    def object(self) -> str:
        return f"{self.collection}/{self.name}"


def _merge(target: Json, patch: Json) -> None:
    """RFC 7386 JSON merge patch: ``None`` removes a key, objects merge, the rest replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def status(code: int, reason: str, message: str = "") -> httpx.Response:
    """A `Status` answer, as the API server sends a failure."""
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message or reason}  # fmt: skip
    return httpx.Response(code, json=body)


def _metadata_only(obj: Json) -> Json:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": copy.deepcopy(obj.get("metadata") or {})}  # fmt: skip


def _label_matches(labels: Json, term: str) -> bool:
    """One term of a label selector: ``k=v``, ``k==v``, ``k!=v``, ``k`` (exists), ``!k``."""
    if "!=" in term:
        key, value = term.split("!=", 1)
        return labels.get(key.strip()) != value.strip()
    if "=" in term:
        key, value = term.split("=", 1)
        return labels.get(key.strip()) == value.lstrip("=").strip()
    if term.startswith("!"):
        return term[1:].strip() not in labels
    return term.strip() in labels


def _selected(obj: Json, labels: str | None, fields: str | None) -> bool:
    meta = obj.get("metadata") or {}
    have = meta.get("labels") or {}
    if not all(_label_matches(have, t) for t in filter(None, (labels or "").split(","))):
        return False
    for term in filter(None, (fields or "").split(",")):
        key, _, value = term.partition("=")
        got: Any = obj
        for part in key.split("."):  # metadata.name, spec.nodeName, involvedObject.uid, ...
            got = got.get(part) if isinstance(got, dict) else None
        if str(got or "") != value.lstrip("="):
            return False
    return True


async def _silence() -> AsyncIterator[bytes]:
    await asyncio.sleep(3600)
    yield b""


class FakeApiServer:
    """Objects by path, and a record of what was asked of it (see the module docstring)."""

    def __init__(self) -> None:
        self.objects: dict[str, Json] = {}
        """Every object by its path (``/api/v1/namespaces/ns/pods/p``), in creation order."""
        self.version = 1
        self.requests: list[tuple[str, str]] = []
        """``(method, url)`` of every request, in order."""
        self.patches: list[tuple[str, str, Json]] = []
        """``(plural, name, patch)`` of every PATCH that was applied."""
        self.created: list[Json] = []
        """The body of every object a POST created, in order (Events included)."""
        self.intercept: Callable[[httpx.Request], httpx.Response | None] | None = None
        """Answers a request instead of the server when it returns a response (faults)."""
        self.server_version: Json = {"major": "1", "minor": "36", "gitVersion": "v1.36.5"}
        self.binding_copies: tuple[str, ...] = ("annotations", "labels")
        """What a Binding's metadata copies onto its pod (labels from Kubernetes 1.35)."""

    # -- seeding and reading --------------------------------------------------------------

    def put(self, collection: str, obj: Json) -> Json:
        """Store ``obj`` (a copy, with a new resourceVersion) under a collection path."""
        self.version += 1
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self.objects[f"{collection}/{obj['metadata']['name']}"] = obj
        return obj

    def add(self, resource: Resource, obj: Json) -> Json:
        """Store ``obj`` of ``resource`` (its namespace from ``metadata.namespace``)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{meta['name']}")
        return self.put(resource.path(meta.get("namespace") if resource.namespaced else None), obj)

    def get(self, path: str) -> Json:
        """The stored object at ``path`` (not a copy: tests may change it in place)."""
        return self.objects[path]

    def obj(self, resource: Resource, name: str, namespace: str | None = None) -> Json:
        """The stored object of ``resource`` (not a copy)."""
        return self.objects[resource.path(namespace, name)]

    def of(self, plural: str) -> list[Json]:
        """Every stored object of one kind, in creation order."""
        return [o for p, o in self.objects.items() if (_Path.parse(p) or _NONE).plural == plural]

    def client(self, **kwargs: Any) -> KubeClient:
        """A `KubeClient` whose requests this server answers."""
        return KubeClient(ClusterConfig(server="https://fake.invalid"),
                          transport=httpx.MockTransport(self.handle), **kwargs)  # fmt: skip

    # -- serving -----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, str(request.url)))
        if self.intercept is not None:
            answer = self.intercept(request)
            if answer is not None:
                return answer
        if request.url.path == "/version":
            return httpx.Response(200, json=self.server_version)
        where = _Path.parse(request.url.path)
        if where is None:
            return status(404, "NotFound", f"no such path {request.url.path}")
        if request.url.params.get("watch") == "true":
            return httpx.Response(200, content=_silence())  # open, and nothing happens
        metadata_only = METADATA_ONLY in request.headers.get("accept", "")
        body = orjson.loads(request.content) if request.content else {}
        if request.method == "GET":
            return self._get(request, where, metadata_only)
        if request.method == "POST":
            return self._post(where, body)
        if request.method == "DELETE":
            return self._delete(where, body)
        return self._update(request.method, where, body, metadata_only)

    def _get(self, request: httpx.Request, where: _Path, metadata_only: bool) -> httpx.Response:
        if where.name is not None:
            found = self.objects.get(where.object)
            if found is None:
                return status(404, "NotFound", f'{where.plural} "{where.name}" not found')
            return httpx.Response(200, json=_metadata_only(found) if metadata_only else found)
        params = request.url.params
        labels, fields = params.get("labelSelector"), params.get("fieldSelector")
        items = [o for p, o in self.objects.items()
                 if self._listed(p, where) and _selected(o, labels, fields)]  # fmt: skip
        start = int(params.get("continue") or 0)
        limit = int(params.get("limit") or 0) or len(items) or 1
        meta: Json = {"resourceVersion": str(self.version)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        page = items[start : start + limit]
        if metadata_only:
            page = [_metadata_only(o) for o in page]
        return httpx.Response(200, json={"kind": "List", "metadata": meta, "items": page})

    @staticmethod
    def _listed(path: str, where: _Path) -> bool:
        got = _Path.parse(path)
        if got is None or got.sub is not None or (got.prefix, got.plural) != (
            where.prefix, where.plural
        ):  # fmt: skip
            return False
        return where.namespace is None or got.namespace == where.namespace

    def _post(self, where: _Path, body: Json) -> httpx.Response:
        if where.sub == "binding":
            pod = self.objects.get(where.object)
            if pod is None:
                return status(404, "NotFound", f'pods "{where.name}" not found')
            if (pod.get("spec") or {}).get("nodeName"):
                return status(409, "Conflict", f"pod {where.name} is already assigned to a node")
            pod.setdefault("spec", {})["nodeName"] = body["target"]["name"]
            for key in self.binding_copies:
                meta = body.get("metadata") or {}
                pod["metadata"].setdefault(key, {}).update(meta.get(key) or {})
            self.version += 1
            pod["metadata"]["resourceVersion"] = str(self.version)
            return httpx.Response(201, json=body)
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{self.version:x}"
        if where.namespace is not None:
            meta.setdefault("namespace", where.namespace)
        meta.setdefault("uid", f"uid-{meta.get('name')}")
        if f"{where.collection}/{meta.get('name')}" in self.objects:
            return status(409, "AlreadyExists", f'{where.plural} "{meta.get("name")}" exists')
        self.created.append(copy.deepcopy(body))
        return httpx.Response(201, json=self.put(where.collection, body))

    def _delete(self, where: _Path, body: Json) -> httpx.Response:
        current = self.objects.get(where.object)
        if current is None:
            return status(404, "NotFound", f'{where.plural} "{where.name}" not found')
        expected = ((body.get("preconditions") or {}).get("resourceVersion")) if body else None
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            return status(409, "Conflict", "the object has been modified")
        return httpx.Response(200, json=self.objects.pop(where.object))

    def _update(self, method: str, where: _Path, body: Json, metadata_only: bool) -> httpx.Response:
        current = self.objects.get(where.object)
        if current is None:
            return status(404, "NotFound", f'{where.plural} "{where.name}" not found')
        body = copy.deepcopy(body)
        expected = (body.get("metadata") or {}).pop("resourceVersion", None)
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            return status(409, "Conflict", "the object has been modified; please apply your "
                          "changes to the latest version and try again")  # fmt: skip
        if method == "PUT":
            updated = body
        else:
            updated = copy.deepcopy(current)
            _merge(updated, body)
            self.patches.append((where.plural, str(where.name), body))
        stored = self.put(where.collection, updated)
        return httpx.Response(200, json=_metadata_only(stored) if metadata_only else stored)


_NONE = _Path("", None, "", None, None)
