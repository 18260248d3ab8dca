"""The per-vendor mutation rules interface, and helpers over raw container JSON.

What a container asks for, the defaults admission adds (the default count, a whole device's
cores), the checks of its values and the quota amounts all come from the Rust core
(`hami_rustcore.RequestModel.admit`), the model the extender fits with. A vendor's rules add
only what the core does not model: env variables and pod fields such as the runtime class,
given the core's answer for the container. Everything works on the raw Kubernetes JSON dicts of
the AdmissionReview; shapes are validated before any rule runs (`hami_webhook.pod_shape`).
"""

from __future__ import annotations

from typing import Any, Protocol

from hami_rustcore import ContainerAdmission

Json = dict[str, Any]


class AdmissionRules(Protocol):
    """One vendor's mutations beyond the request model."""

    @property
    def vendor(self) -> str:
        """The vendor key, e.g. ``NVIDIA`` (HAMi's CommonWord), as the core names it."""
        ...

    def mutate_container(self, container: Json, pod: Json, admitted: ContainerAdmission) -> None:
        """Mutate `container` (and pod-level fields such as the runtime class) in place.

        `admitted` is the core's answer for this container: ``self.vendor in admitted.vendors``
        when it asks for this vendor's devices; its limits are already added.
        """
        ...


def container_name(container: Json) -> str:
    name = container.get("name")
    return name if isinstance(name, str) else "<unnamed>"


def _set_resource(container: Json, part: str, name: str, value: str) -> None:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        resources = container["resources"] = {}
    current = resources.get(part)
    if not isinstance(current, dict):
        current = resources[part] = {}
    current[name] = value


def set_limit(container: Json, name: str, value: str) -> None:
    _set_resource(container, "limits", name, value)


def set_request(container: Json, name: str, value: str) -> None:
    _set_resource(container, "requests", name, value)


def set_env(container: Json, name: str, value: str) -> None:
    """Set an env variable, replacing an earlier entry of the same name (HAMi appends a
    duplicate, whose last occurrence wins in the kubelet; replacing gives the same result)."""
    env = container.get("env")
    if not isinstance(env, list):
        env = container["env"] = []
    for entry in env:
        if isinstance(entry, dict) and entry.get("name") == name:
            entry.clear()
            entry.update({"name": name, "value": value})
            return
    env.append({"name": name, "value": value})
