"""Shape checks of the pod JSON before any rule reads it.

The API server has already validated a real pod, but the webhook is an HTTPS endpoint anyone in
the cluster can call, so every field a rule touches is checked here; a bad shape is refused with
the JSON path to fix, never a crash.
"""

from __future__ import annotations

from typing import Any

CONTAINER_LISTS = ("initContainers", "containers")
# Deeper than any pod the API server sends (about 20 levels); the Rust core reads up to 128.
MAX_DEPTH = 100


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests objects and lists more than `limit` levels (no recursion, so a
    hostile depth cannot exhaust the stack)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _check_container(path: str, container: Any) -> list[str]:
    if not isinstance(container, dict):
        return [f"{path} must be an object"]
    problems = []
    if not isinstance(container.get("name"), str):
        problems.append(f"{path}.name must be a string")
    resources = container.get("resources")
    if resources is not None:
        if not isinstance(resources, dict):
            problems.append(f"{path}.resources must be an object")
        else:
            for part in ("limits", "requests"):
                values = resources.get(part)
                if values is None:
                    continue
                if not isinstance(values, dict) or not all(
                    isinstance(v, str | int) and not isinstance(v, bool) for v in values.values()
                ):
                    problems.append(f"{path}.resources.{part} must map names to quantities")
    env = container.get("env")
    if env is not None and (not isinstance(env, list) or not all(isinstance(e, dict) for e in env)):
        problems.append(f"{path}.env must be a list of objects")
    security = container.get("securityContext")
    if security is not None and not isinstance(security, dict):
        problems.append(f"{path}.securityContext must be an object")
    return problems


def pod_shape_problems(pod: Any) -> list[str]:
    """Every shape problem of `pod`, as JSON paths with what they must be; [] when usable."""
    if not isinstance(pod, dict):
        return ["object must be a Pod object"]
    if too_deep(pod):
        return [f"object is nested more than {MAX_DEPTH} levels deep, which no pod is"]
    problems = []
    metadata = pod.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.append("metadata must be an object")
    elif isinstance(metadata, dict):
        for part in ("labels", "annotations"):
            values = metadata.get(part)
            if values is not None and (
                not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
            ):
                problems.append(f"metadata.{part} must map names to strings")
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [*problems, "spec must be an object"]
    for field in ("schedulerName", "nodeName", "runtimeClassName"):
        if spec.get(field) is not None and not isinstance(spec[field], str):
            problems.append(f"spec.{field} must be a string")
    for kind in (*CONTAINER_LISTS, "ephemeralContainers"):
        containers = spec.get(kind)
        if containers is None:
            continue
        if not isinstance(containers, list):
            problems.append(f"spec.{kind} must be a list")
            continue
        for i, container in enumerate(containers):
            problems += _check_container(f"spec.{kind}[{i}]", container)
    return problems


def containers(pod: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The init or regular containers of a shape-checked pod."""
    found = pod["spec"].get(kind)
    return found if isinstance(found, list) else []
