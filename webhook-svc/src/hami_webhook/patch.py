"""RFC 6902 JSON Patch between the pod as received and the pod as mutated.

Deterministic, minimal for the changes admission makes: objects are compared key by key (new
keys ``add``, changed values ``replace``, removed keys ``remove``); a list that only grew gets
one ``add`` per new element; any other list change replaces the list. Keys are escaped per
RFC 6901 (``nvidia.com/gpu`` becomes ``nvidia.com~1gpu``).
"""

from __future__ import annotations

import copy
from typing import Any

Patch = list[dict[str, Any]]


def escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def json_patch(before: Any, after: Any, path: str = "") -> Patch:
    """Operations that turn `before` into `after`."""
    if isinstance(before, dict) and isinstance(after, dict):
        ops: Patch = []
        for key in before:
            if key not in after:
                ops.append({"op": "remove", "path": f"{path}/{escape(key)}"})
        for key, value in after.items():
            child = f"{path}/{escape(key)}"
            if key not in before:
                ops.append({"op": "add", "path": child, "value": value})
            else:
                ops += json_patch(before[key], value, child)
        return ops
    if isinstance(before, list) and isinstance(after, list):
        if len(after) >= len(before):
            ops = []
            for i, old in enumerate(before):
                ops += json_patch(old, after[i], f"{path}/{i}")
            ops += [
                {"op": "add", "path": f"{path}/{i}", "value": after[i]}
                for i in range(len(before), len(after))
            ]
            return ops
        return [{"op": "replace", "path": path, "value": after}]
    if type(before) is type(after) and before == after:
        return []
    return [{"op": "replace", "path": path, "value": after}]


def apply_patch(document: Any, patch: Patch) -> Any:
    """Apply the add/replace/remove operations `json_patch` emits (used by tests and checks)."""
    doc = copy.deepcopy(document)
    for op in patch:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        if not parts:
            doc = copy.deepcopy(op["value"])
            continue
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op["op"] == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif op["op"] == "replace":
                parent[index] = copy.deepcopy(op["value"])
            else:
                del parent[index]
        elif op["op"] == "remove":
            del parent[last]
        else:
            parent[last] = copy.deepcopy(op["value"])
    return doc
