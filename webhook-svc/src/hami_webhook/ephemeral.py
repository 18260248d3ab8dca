"""Ephemeral containers added to a running pod (UPDATE of ``pods/ephemeralcontainers``).

Kubelet never calls a device plugin's Allocate for an ephemeral container (it has no
resources), so it gets no device, no limits and no hook from us. On a pod that holds shared
devices it must not reach them another way, outside every limit:
- privileged, it sees every device of the node: refused;
- with the NVIDIA container runtime, env ``NVIDIA_VISIBLE_DEVICES`` asking for devices gets them
  mounted: refused, unless the value is ``none`` or ``void``; and when its env does not set it,
  ``NVIDIA_VISIBLE_DEVICES=none`` is added, because the image's own env may ask for them (the CUDA
  images set ``all``) and a container's env wins over its image's.

Not refused: ``CUDA_DISABLE_CONTROL``, ``LD_PRELOAD`` and the limit variables. They steer the
hook, which an ephemeral container never has, and without a device they reach nothing; the
hook is loaded from the mounted ``/etc/ld.so.preload``, which ``LD_PRELOAD`` does not replace.
Only containers new in this update are looked at: existing ones cannot change.
"""

from __future__ import annotations

from typing import Any

from hami_webhook.rules.base import Json, container_name, set_env

VISIBLE_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"
NO_DEVICES = ("none", "void")


def new_ephemeral_containers(pod: Json, old: Any) -> list[Json]:
    """The ephemeral containers of `pod` that `old` (the pod before the update) lacks."""
    old_spec = old.get("spec") if isinstance(old, dict) else None
    old_list = old_spec.get("ephemeralContainers") if isinstance(old_spec, dict) else None
    known = {c.get("name") for c in old_list or [] if isinstance(c, dict)}
    found = pod["spec"].get("ephemeralContainers") or []
    return [c for c in found if c.get("name") not in known]


def refusal(container: Json) -> str | None:
    """Why this new ephemeral container of a device pod is refused, or None."""
    name = container_name(container)
    if (container.get("securityContext") or {}).get("privileged") is True:
        return (
            f"ephemeral container {name} is privileged and the pod holds shared devices: a "
            "privileged container sees every device, outside the pod's limits; debug without "
            "securityContext.privileged"
        )
    for entry in container.get("env") or []:
        if entry.get("name") != VISIBLE_DEVICES_ENV:
            continue
        value = entry.get("value")
        if "valueFrom" in entry or not (value is None or value in ("", *NO_DEVICES)):
            return (
                f"ephemeral container {name} sets {VISIBLE_DEVICES_ENV} and the pod holds shared "
                "devices: the container runtime would give it devices outside the pod's limits; "
                f"remove {VISIBLE_DEVICES_ENV} or set it to none"
            )
    return None


def hide_devices(container: Json) -> None:
    """``NVIDIA_VISIBLE_DEVICES=none`` unless the container's env already sets it (to none)."""
    env = container.get("env") or []
    if not any(entry.get("name") == VISIBLE_DEVICES_ENV for entry in env):
        set_env(container, VISIBLE_DEVICES_ENV, "none")
