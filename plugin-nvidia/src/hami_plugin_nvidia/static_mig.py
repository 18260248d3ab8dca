"""Static MIG (``--mig-strategy``, NVIDIA's device-plugin semantics, node-side reference §1.12):
the MIG instances that exist on MIG-mode GPUs (made by an operator or a MIG manager) are served
as they are, one ID per instance, handed out by their MIG UUIDs (no hook: the hardware enforces
the partition).

- ``mixed``: one resource per profile, ``nvidia.com/mig-<profile>`` (``+`` becomes ``.``).
- ``single``: every GPU of the node is in MIG mode and every instance has the same profile (on
  the same model); the instances are served under the plugin's own resource (``nvidia.com/gpu``)
  in place of the whole GPUs. A node with no MIG-mode GPU falls back to ``none``; any other
  layout is refused at startup, as NVIDIA's plugin refuses it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.backend import PhysicalDevice
from hami_common.deviceplugin.vendor import CapacityResource

from hami_plugin_nvidia.mig import MigDevices

log = logging.getLogger(__name__)


class StaticMigError(Exception):
    """The node's MIG layout does not fit ``--mig-strategy`` (the message says what to do)."""


@dataclass(frozen=True)
class StaticMig:
    """The MIG control and the MIG-mode GPUs whose instances are served."""

    strategy: str
    """``mixed`` or ``single``."""
    mig: MigDevices
    gpus: tuple[str, ...]

    def resources(self, resource_name: str, socket_name: str) -> list[CapacityResource]:
        """The resources that serve the instances; with ``single``, one named
        ``resource_name`` on ``socket_name`` (the plugin's own, which it replaces)."""
        if self.strategy == "single":
            return [CapacityResource(resource_name=resource_name, socket_name=socket_name,
                                     replicas=lambda _dev: 1, listed=self._instances,
                                     respond=respond)]  # fmt: skip
        profiles = sorted({i.profile for gpu in self.gpus for i in self.mig.instances(gpu)})
        return [
            CapacityResource(
                resource_name=f"nvidia.com/mig-{p.replace('+', '.')}",
                socket_name=f"nvidia-mig-{p.replace('+', '.')}.sock",
                replicas=lambda _dev: 1,
                listed=functools.partial(self._instances, profile=p),
                respond=respond,
            )
            for p in profiles
        ]

    def _instances(
        self, devices: Sequence[PhysicalDevice], profile: str | None = None
    ) -> list[PhysicalDevice]:
        """Each instance (of ``profile``, or all) of the served GPUs, as a device of its own
        with its MIG UUID, its GPU's index, NUMA node and health (the GPU's health changes
        reach it: ``parent``)."""
        out = []
        for dev in devices:
            if dev.uuid not in self.gpus:
                continue
            for inst in self.mig.instances(dev.uuid):
                if profile is None or inst.profile == profile:
                    out.append(dataclasses.replace(dev, uuid=inst.mig_uuid, mode="mig",
                                                   parent=dev.uuid))  # fmt: skip
        return out


def respond(ids: Sequence[str]) -> pb.ContainerAllocateResponse:
    """A container's answer: the instances kubelet chose, visible by their MIG UUIDs."""
    resp = pb.ContainerAllocateResponse()
    resp.envs["NVIDIA_VISIBLE_DEVICES"] = ",".join(ids)
    return resp


def plan(strategy: str, devices: Sequence[PhysicalDevice], mig: MigDevices) -> StaticMig | None:
    """What ``strategy`` serves on a node with ``devices``: None when the MIG-mode GPUs (if any)
    are not served as instances. Raises `StaticMigError` when ``single`` cannot hold."""
    if strategy == "none":
        return None
    gpus = [d for d in devices if d.mode == "mig"]
    if strategy != "single":
        return StaticMig(strategy, mig, tuple(d.uuid for d in gpus))
    if not gpus:
        log.info("--mig-strategy single: no GPU in MIG mode; serving whole GPUs (as 'none')")
        return None
    whole = [d for d in devices if d.mode != "mig"]
    if whole:
        names = ", ".join(f"{d.uuid} (index {d.index})" for d in whole)
        raise StaticMigError(
            f"--mig-strategy single: every GPU of the node must be in MIG mode, and {names} "
            "is not: enable MIG on it (nvidia-smi -i <index> -mig 1, then make its instances), "
            "filter it out (filterdevices), or use --mig-strategy mixed"
        )
    kinds: dict[tuple[str, str], str] = {}
    for dev in gpus:
        instances = mig.instances(dev.uuid)
        if not instances:
            raise StaticMigError(
                f"--mig-strategy single: GPU {dev.uuid} (index {dev.index}) is in MIG mode but "
                "has no MIG instance: make its instances (nvidia-smi mig -cgi <profile> -C, or "
                "a MIG manager), or use --mig-strategy mixed"
            )
        for inst in instances:
            kinds.setdefault((dev.model, inst.profile), dev.uuid)
    if len(kinds) > 1:
        found = ", ".join(f"{p} on {model} ({gpu})" for (model, p), gpu in sorted(kinds.items()))
        raise StaticMigError(
            "--mig-strategy single: more than one MIG device type on the node "
            f"({found}); single serves one kind under one resource: make every instance the "
            "same profile on the same model, or use --mig-strategy mixed "
            "(nvidia.com/mig-<profile>)"
        )
    return StaticMig(strategy, mig, tuple(d.uuid for d in gpus))
