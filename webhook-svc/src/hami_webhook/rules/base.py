"""The per-vendor admission rules interface, and helpers over raw container JSON.

A vendor backend tells admission three things: its resource names (`VendorResources`), how to
mutate one container (`AdmissionRules.mutate_container`: defaults, env, runtime class), and what a
container asks for (`AdmissionRules.device_request`, HAMi's request derivation, reused by quota
here and meant for the extender's fit input). Everything works on the raw Kubernetes JSON dicts
of the AdmissionReview; shapes are validated before any rule runs (`hami_webhook.pod_shape`), so
rules may assume ``resources.limits`` is a mapping and ``env`` a list of mappings when present.

This module depends only on `hami_common.settings`, so another service can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from hami_webhook.quantity import QuantityError, parse_quantity, quantity_value

Json = dict[str, Any]

# MemPercentagereq's "unset" sentinel in HAMi's request model.
PERCENT_UNSET = 101
_INT32_MAX = 2**31 - 1


class AdmissionRefused(Exception):  # noqa: N818 - a refusal, not a bug
    """The pod is refused. `message` says what to change; `code` is the HTTP-like status."""

    def __init__(self, message: str, code: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class VendorResources:
    """A vendor's resource names; an empty name means 'not configured'."""

    count: str
    memory: str = ""
    memory_percentage: str = ""
    cores: str = ""
    priority: str = ""

    def named(self) -> tuple[str, ...]:
        """Every configured name, count first."""
        return tuple(
            n
            for n in (self.count, self.memory, self.memory_percentage, self.cores, self.priority)
            if n
        )


@dataclass(frozen=True)
class DeviceRequest:
    """What one container asks of one vendor (HAMi's ``ContainerDeviceRequest``).

    `memory` is MiB per device, already multiplied by the vendor's memory factor (0 = not given);
    `memory_percentage` is 0..100, or `PERCENT_UNSET`; `cores` is percent of one device.
    """

    vendor: str
    count: int
    memory: int
    memory_percentage: int
    cores: int


class AdmissionRules(Protocol):
    """One vendor's admission behaviour."""

    @property
    def vendor(self) -> str:
        """The vendor key, e.g. ``NVIDIA`` (HAMi's CommonWord)."""
        ...

    @property
    def resources(self) -> VendorResources: ...

    @property
    def memory_factor(self) -> int:
        """Multiplier of the memory resource (1 = MiB as given); quota limits scale with it."""
        ...

    def mutate_container(self, container: Json, pod: Json) -> bool:
        """Mutate `container` (and pod-level fields such as the runtime class) in place.

        Returns whether the container asks for this vendor's devices. Raises `AdmissionRefused`
        for a request that cannot be admitted.
        """
        ...

    def device_request(self, container: Json) -> DeviceRequest | None:
        """The container's request, or None when it asks for none of these devices."""
        ...


# -- helpers over raw container JSON -------------------------------------------------------


def container_name(container: Json) -> str:
    name = container.get("name")
    return name if isinstance(name, str) else "<unnamed>"


def limits(container: Json) -> dict[str, Any]:
    value = (container.get("resources") or {}).get("limits")
    return value if isinstance(value, dict) else {}


def requests(container: Json) -> dict[str, Any]:
    value = (container.get("resources") or {}).get("requests")
    return value if isinstance(value, dict) else {}


def has_resource(container: Json, name: str) -> bool:
    """The resource appears in limits or requests."""
    return bool(name) and (name in limits(container) or name in requests(container))


def raw_resource(container: Json, name: str) -> Any:
    """The value from limits, else from requests, else None (HAMi's lookup order)."""
    if not name:
        return None
    found = limits(container).get(name)
    return found if found is not None else requests(container).get(name)


def resource_int(container: Json, name: str) -> int | None:
    """The integer value (rounded up) of a resource from limits else requests, or None.

    Raises `AdmissionRefused` (400) when the value is not a quantity, naming the resource.
    """
    raw = raw_resource(container, name)
    if raw is None:
        return None
    try:
        return quantity_value(raw)
    except QuantityError as exc:
        raise AdmissionRefused(
            f"container {container_name(container)}: {name} is not a valid quantity ({exc}); "
            f"give a whole number such as '1'",
            400,
        ) from None


def exact_int(raw: Any) -> int | None:
    """An int32-sized non-negative integer quantity, else None (HAMi rejects the request)."""
    try:
        value = parse_quantity(raw)
    except QuantityError:
        return None
    if value.denominator != 1 or value < 0 or value > _INT32_MAX:
        return None
    return int(value)


def set_limit(container: Json, name: str, value: str) -> None:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        resources = container["resources"] = {}
    current = resources.get("limits")
    if not isinstance(current, dict):
        current = resources["limits"] = {}
    current[name] = value


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
