"""The wire format of ``k8s.io/kube-scheduler/extender/v1``.

The upstream Go types carry no JSON tags, so Go writes the field names verbatim (``Pod``,
``NodeNames``, ``FailedNodes``...) and reads keys case-insensitively; so do we. Answers always
carry every field of the Go struct, nil ones as ``null``, and errors travel in ``Error`` with
HTTP 200 (kube-scheduler reads only the body). Parsing is defensive: anything malformed becomes
a `WireError` whose message says what was wrong, never an exception escaping the handler.

Nesting: the core reads a body of any depth (it keeps the pod and the nodes as raw JSON), but
orjson refuses to read past 1,024 levels and to write past 254, and the core's pod decoder stops
at 128; so every JSON text Python reads here is first checked against `MAX_DEPTH` levels, far
beyond any real pod or node (about 20), and a deeper one is a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import hami_rustcore as core
import orjson

Json = dict[str, Any]


MAX_DEPTH = 100
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"')


class WireError(ValueError):
    """The request body is not a valid extender argument; the message says what to fix."""


def check_depth(text: bytes, what: str, limit: int = MAX_DEPTH) -> None:
    """Raise `WireError` when the JSON ``text`` nests arrays and objects deeper than ``limit``.

    On /filter's path, so in C-speed passes only: a text with at most ``limit`` opening brackets
    cannot be deeper (most pods); else escapes go, then all but brackets and quotes, then the
    strings (every other piece between quotes), and the innermost pairs are peeled one level at
    a time (``limit`` passes at most): about 50 us for a 6 kB pod with managedFields and a
    last-applied annotation. Brackets that do not pair (not JSON) end the peeling early: the
    JSON parser reports those."""
    if text.count(b"[") + text.count(b"{") <= limit:
        return
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(text.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    if len(brackets) // 2 <= limit:
        return
    for _ in range(limit):
        peeled = brackets.replace(b"[]", b".").replace(b"{}", b".")
        if peeled == brackets:
            return
        brackets = peeled.replace(b".", b"")
        if not brackets:
            return
    raise WireError(
        f"{what}: JSON nested deeper than {limit} levels; no Kubernetes object is, so this is "
        "not one"
    )


def _fold(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Keys lower-cased (Go's case-insensitive match); the first spelling of a key wins."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out.setdefault(key.lower(), value)
    return out


def _load(body: bytes, what: str) -> dict[str, Any]:
    if not body:
        raise WireError(f"{what}: empty body; send a JSON object")
    check_depth(body, what)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"{what}: the body is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise WireError(f"{what}: the body must be a JSON object, not {type(doc).__name__}")
    return _fold(doc)


def _loads(text: bytes, what: str) -> Any:
    """JSON the core read already (and not too deep), which orjson may still refuse: a number
    beyond a double (``1e400``), a lone surrogate (``"\\ud800"``)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"{what}: not JSON that can be read ({exc})") from None


def _string(value: Any, field: str, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WireError(f"{what}: {field} must be a string, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class FilterArgs:
    """``ExtenderArgs``: the pod, and the candidates as names (``nodeCacheCapable``) or as
    Node objects (``Nodes``, the side-effect-free simulation path). The names stay in the
    core (`core.NodeNames`): a cluster-wide list is thousands of them."""

    pod: Json
    pod_json: bytes
    uid: str
    namespace: str
    name: str
    node_names: core.NodeNames | None
    nodes: list[Json] | None
    scheduler_name: str = "default-scheduler"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_filter_args(body: bytes) -> FilterArgs:
    """Reads the body in the core (keys case-insensitive, names checked to be strings as they
    are copied), then the pod's metadata here."""
    if not body:
        raise WireError("ExtenderArgs: empty body; send a JSON object")
    try:
        pod_json, names, nodes_json = core.parse_extender_args(body)
    except core.CoreError as exc:
        raise WireError(str(exc)) from None
    if pod_json is None:
        raise WireError("ExtenderArgs: extender args missing pod")
    check_depth(pod_json, "ExtenderArgs: Pod")
    pod = _loads(pod_json, "ExtenderArgs: Pod")
    if not isinstance(pod, dict):
        raise WireError(f"ExtenderArgs: Pod must be an object, not {type(pod).__name__}")
    spec = pod.get("spec")
    scheduler = _string(
        spec.get("schedulerName") if isinstance(spec, dict) else None,
        "Pod.spec.schedulerName", "ExtenderArgs",
    )  # fmt: skip
    meta = pod.get("metadata")
    if not isinstance(meta, dict):
        raise WireError("ExtenderArgs: Pod.metadata must be an object")
    uid = _string(meta.get("uid"), "Pod.metadata.uid", "ExtenderArgs")
    namespace = _string(meta.get("namespace"), "Pod.metadata.namespace", "ExtenderArgs")
    name = _string(meta.get("name"), "Pod.metadata.name", "ExtenderArgs")
    if not uid or not name:
        raise WireError("ExtenderArgs: Pod.metadata needs a uid and a name")
    nodes: list[Json] | None = None
    if nodes_json is not None:
        check_depth(nodes_json, "ExtenderArgs: Nodes")
        nodes_list = _loads(nodes_json, "ExtenderArgs: Nodes")
        items = nodes_list.get("items") if isinstance(nodes_list, dict) else None
        if items is None and isinstance(nodes_list, dict):
            items = []
        if not isinstance(items, list) or not all(isinstance(n, dict) for n in items):
            raise WireError("ExtenderArgs: Nodes must be a NodeList whose items are objects")
        nodes = items
    if names is None and nodes is None:
        raise WireError(
            "ExtenderArgs: neither NodeNames nor Nodes is set; configure the extender with "
            "nodeCacheCapable: true"
        )
    # the API server defaults an empty schedulerName to default-scheduler
    return FilterArgs(pod, pod_json, uid, namespace or "default", name, names, nodes,
                      scheduler or "default-scheduler")  # fmt: skip


@dataclass(frozen=True)
class BindArgs:
    """``ExtenderBindingArgs``."""

    name: str
    namespace: str
    uid: str
    node: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_bind_args(body: bytes) -> BindArgs:
    args = _load(body, "ExtenderBindingArgs")
    values = {
        field: _string(args.get(field.lower()), field, "ExtenderBindingArgs")
        for field in ("PodName", "PodNamespace", "PodUID", "Node")
    }
    missing = [field for field, value in values.items() if not value]
    if missing:
        raise WireError(f"ExtenderBindingArgs: missing {', '.join(missing)}")
    return BindArgs(values["PodName"], values["PodNamespace"], values["PodUID"], values["Node"])


def filter_result(
    node_names: list[str] | core.NodeNames | None = None,
    failed: Mapping[str, str] | bytes | None = None,
    error: str = "",
    nodes: list[Json] | None = None,
) -> bytes:
    """``ExtenderFilterResult`` as Go would write it."""
    return orjson.dumps(
        {
            "Nodes": None if nodes is None else {"metadata": {}, "items": nodes},
            "NodeNames": orjson.Fragment(node_names.to_json())
            if isinstance(node_names, core.NodeNames)
            else node_names,
            # bytes: the core's JSON object, written as is
            "FailedNodes": orjson.Fragment(failed) if isinstance(failed, bytes) else failed or {},
            "FailedAndUnresolvableNodes": None,
            "Error": error,
        }
    )


def bind_result(error: str = "") -> bytes:
    """``ExtenderBindingResult``."""
    return orjson.dumps({"Error": error})
