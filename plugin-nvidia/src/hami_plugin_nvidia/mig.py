"""Dynamic MIG on the node (HAMi v2.10, node-side reference §1.11): what a MIG-mode GPU
registers, and the GPU and compute instances made at Allocate for the scheduler's reservation
(``hami.io/vgpu-mig-allocations``).

`MigDevices` is the hardware: NVML (`hami_plugin_nvidia.nvml.NvmlMig`) or `FakeMig`, which
simulates NVIDIA's geometry per model (the core's tables) and answers with NVML's error codes.
`MigManager` makes instances idempotently: an instance already at the reserved placement (made
before a restart, or before the annotation patch was written) is adopted, never made twice; and
it destroys the instances no live reservation holds (`reclaim`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import hami_rustcore
from hami_common.deviceplugin.backend import PhysicalDevice
from hami_common.protocol.annotations import MIG_ALLOCATIONS

log = logging.getLogger(__name__)

# NVML return codes (nvml.h), as the real library raises them.
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_IN_USE = 19
NVML_ERROR_INSUFFICIENT_RESOURCES = 23

Json = dict[str, Any]


CHART_VALUE = "nvidia.devicePlugin.dynamicMig.enabled"
NO_PERMISSION_HINT = (
    "the plugin may not manage MIG instances (NVML needs the MIG config capability: "
    "/proc/driver/nvidia/capabilities/mig/config and /dev/nvidia-caps, given to a privileged "
    f"container); with the hami chart set {CHART_VALUE}=true (devicePlugin.dynamicMig.enabled "
    "in the hami-nvidia chart), or run the plugin privileged with NVIDIA_MIG_CONFIG_DEVICES=all"
)


class MigError(RuntimeError):
    """A MIG operation failed; ``code`` is NVML's return code. NVML's refusal for want of the
    MIG config capability (``NO_PERMISSION``) says how to grant it."""

    def __init__(self, code: int, message: str) -> None:
        hint = f": {NO_PERMISSION_HINT}" if code == NVML_ERROR_NO_PERMISSION else ""
        super().__init__(f"{message} (NVML error {code}){hint}")
        self.code = code


@dataclass(frozen=True)
class MigInstance:
    gpu_uuid: str
    gpu_instance_id: int
    compute_instance_id: int
    profile: str
    start: int
    size: int
    mig_uuid: str


class MigDevices(Protocol):
    """MIG operations on this node's GPUs."""

    def model(self, gpu_uuid: str) -> str: ...

    def instances(self, gpu_uuid: str) -> list[MigInstance]: ...

    def create(self, gpu_uuid: str, profile: str, start: int, size: int) -> MigInstance:
        """A GPU instance at exactly this placement and a compute instance over all of it."""
        ...

    def destroy(self, gpu_uuid: str, gpu_instance_id: int) -> None:
        """The compute instances of the GPU instance, then the GPU instance."""
        ...

    def enable(self, gpu_uuid: str, model: str) -> bool:
        """Turns MIG mode on for an idle GPU; False (nothing changed) when it runs processes
        or the change waits for a GPU reset."""
        ...


def profile_table(model: str) -> dict[str, tuple[int, int, list[tuple[int, int]]]]:
    """Per profile name: NVML profile id, compute slices, legal placements (the core's table)."""
    geometry = hami_rustcore.mig_geometry(model)
    if geometry is None:
        return {}
    return {name: (nvml_id, slices, pl) for name, nvml_id, _mb, slices, _sms, pl in geometry[1]}


class FakeMig:
    """MIG GPUs simulated from the core's per-model geometry, with NVML's error codes: a
    placement the model does not have is ``INVALID_ARGUMENT``, one overlapping an instance is
    ``INSUFFICIENT_RESOURCES``, an unknown instance ``NOT_FOUND``, a GPU not in MIG mode
    ``NOT_SUPPORTED``, any change by a process without the MIG config capability
    (``permitted=False``: a plugin container that is not privileged) ``NO_PERMISSION``.
    ``models`` maps GPU UUID to model name (MIG mode on)."""

    def __init__(
        self, models: dict[str, str], busy: Iterable[str] = (), *, permitted: bool = True
    ) -> None:
        self.models = dict(models)
        self.busy = set(busy)  # GPUs running processes: MIG mode is not turned on there
        self.permitted = permitted
        self._instances: dict[str, list[MigInstance]] = {u: [] for u in models}
        self._lock = threading.Lock()
        self.created = 0  # instances made, for tests

    def model(self, gpu_uuid: str) -> str:
        if gpu_uuid not in self.models:
            raise MigError(NVML_ERROR_NOT_SUPPORTED, f"GPU {gpu_uuid} is not in MIG mode")
        return self.models[gpu_uuid]

    def instances(self, gpu_uuid: str) -> list[MigInstance]:
        self.model(gpu_uuid)
        with self._lock:
            return list(self._instances[gpu_uuid])

    def _check_permitted(self, gpu_uuid: str) -> None:
        if not self.permitted:
            raise MigError(NVML_ERROR_NO_PERMISSION, f"GPU {gpu_uuid}: Insufficient Permissions")

    def create(self, gpu_uuid: str, profile: str, start: int, size: int) -> MigInstance:
        table = profile_table(self.model(gpu_uuid))
        self._check_permitted(gpu_uuid)
        if profile not in table or (start, size) not in table[profile][2]:
            raise MigError(
                NVML_ERROR_INVALID_ARGUMENT, f"{profile} cannot be placed at {start}+{size}"
            )
        with self._lock:
            held = self._instances[gpu_uuid]
            if any(start < i.start + i.size and i.start < start + size for i in held):
                raise MigError(
                    NVML_ERROR_INSUFFICIENT_RESOURCES, f"slices {start}..{start + size} are in use"
                )
            gi = 1 + max((i.gpu_instance_id for i in held), default=0)
            inst = MigInstance(gpu_uuid, gi, 0, profile, start, size,
                               f"MIG-{gpu_uuid.removeprefix('GPU-')}-{gi}")  # fmt: skip
            held.append(inst)
            self.created += 1
            return inst

    def enable(self, gpu_uuid: str, model: str) -> bool:
        if gpu_uuid in self.busy:
            return False
        with self._lock:
            self.models.setdefault(gpu_uuid, model)
            self._instances.setdefault(gpu_uuid, [])
        return True

    def destroy(self, gpu_uuid: str, gpu_instance_id: int) -> None:
        self.model(gpu_uuid)
        self._check_permitted(gpu_uuid)
        with self._lock:
            held = self._instances[gpu_uuid]
            left = [i for i in held if i.gpu_instance_id != gpu_instance_id]
            if len(left) == len(held):
                raise MigError(NVML_ERROR_NOT_FOUND, f"no GPU instance {gpu_instance_id}")
            self._instances[gpu_uuid] = left


def registration(
    model: str, allowlist: Sequence[tuple[Sequence[str], Sequence[str]]]
) -> str | None:
    """The ``migProfiles`` a GPU of ``model`` registers: the profiles its allowlist entry names
    (model names match as case-insensitive substrings, HAMi's rule; with no allowlist, every
    profile of the model); None when no entry matches or the model has no MIG geometry (the GPU
    is then not registered, as HAMi)."""
    if not allowlist:  # none configured: every profile of the model's table
        return hami_rustcore.mig_registration(model)
    lower = model.lower()
    for models, profiles in allowlist:
        if any(m.lower() in lower for m in models):
            return hami_rustcore.mig_registration(model, list(profiles))
    return None


def instance_count(profiles_json: str) -> int:
    """HAMi's ``count`` of a MIG GPU: the most instances any registered profile can have."""
    profiles = json.loads(profiles_json)
    return max((len(p.get("placements") or []) for p in profiles), default=0)


def enable_idle(
    devices: Sequence[PhysicalDevice], mig: MigDevices,
    allowlist: Sequence[tuple[Sequence[str], Sequence[str]]],
) -> list[PhysicalDevice]:  # fmt: skip
    """HAMi's startup in ``operatingmode: mig``: each healthy GPU not in MIG mode whose model has
    allowlisted profiles gets MIG mode turned on when it is idle (no process on it, no reset
    pending); the devices as they are afterwards."""
    out = []
    for dev in devices:
        wanted = dev.healthy and dev.mode != "mig" and registration(dev.model, allowlist)
        if wanted and mig.enable(dev.uuid, dev.model):
            log.info("GPU %s (%s): MIG mode turned on", dev.uuid, dev.model)
            out.append(dataclasses.replace(dev, mode="mig"))
            continue
        if wanted:
            log.warning("GPU %s: MIG mode not turned on (processes running, or a GPU reset is "
                        "pending); shared by the hook until then", dev.uuid)  # fmt: skip
        out.append(dev)
    return out


RECLAIM_GRACE = 15.0
"""Seconds an instance this plugin made (or adopted) is kept even if no reservation seen by a
reclaim pass names it: the pass lists pods before it lists instances, and a pod placed and
allocated in between must not lose its instance."""


class MigManager:
    """Makes the reserved instances (idempotently) and reclaims the ones nothing reserves."""

    def __init__(self, devices: MigDevices, grace: float = RECLAIM_GRACE) -> None:
        self.devices = devices
        self.grace = grace
        self._touched: dict[tuple[str, int], float] = {}  # (GPU, GPU instance) -> when
        self._lock = threading.Lock()

    def ensure(self, entry: Json) -> Json:
        """The reservation entry with its runtime identity (``migUUID``, ``gpuInstanceID``,
        ``computeInstanceID``): the instance at its placement, adopted when one is there with
        the same profile, made otherwise. Raises `MigError` when it cannot be made."""
        gpu, profile = str(entry["gpuUUID"]), str(entry["profile"])
        start, size = int(entry["placement"]["start"]), int(entry["placement"]["size"])
        with self._lock:
            found = [i for i in self.devices.instances(gpu) if (i.start, i.size) == (start, size)]
            if found and found[0].profile == profile:
                inst = found[0]
            elif found:
                raise MigError(
                    NVML_ERROR_IN_USE,
                    f"GPU {gpu}: slices {start}+{size} hold a {found[0].profile}, not {profile}",
                )
            else:
                try:
                    inst = self.devices.create(gpu, profile, start, size)
                except MigError as exc:
                    if exc.code == NVML_ERROR_NO_PERMISSION:
                        log.error("GPU %s: NVML refused to make a %s instance: %s", gpu, profile,
                                  exc)  # fmt: skip
                    raise
                log.info("GPU %s: made %s at %d+%d (%s)", gpu, profile, start, size, inst.mig_uuid)
            self._touched[(gpu, inst.gpu_instance_id)] = time.monotonic()
        return {**entry, "migUUID": inst.mig_uuid, "gpuInstanceID": inst.gpu_instance_id,
                "computeInstanceID": inst.compute_instance_id}  # fmt: skip

    def reclaim(self, gpus: Iterable[str], held: set[tuple[str, int, int]]) -> list[MigInstance]:
        """Destroys the instances on ``gpus`` that no live reservation holds; ``held`` is
        ``(gpu UUID, start, size)`` of every live pod's reservations. Returns what went."""
        gone = []
        with self._lock:
            now = time.monotonic()
            self._touched = {k: t for k, t in self._touched.items() if now - t < self.grace}
            for gpu in gpus:
                for inst in self.devices.instances(gpu):
                    recent = (gpu, inst.gpu_instance_id) in self._touched
                    if (gpu, inst.start, inst.size) in held or recent:
                        continue
                    try:
                        self.devices.destroy(gpu, inst.gpu_instance_id)
                    except MigError as exc:
                        log.warning("GPU %s: instance %d not destroyed: %s", gpu,
                                    inst.gpu_instance_id, exc)  # fmt: skip
                        continue
                    log.info("GPU %s: reclaimed %s at %d+%d", gpu, inst.profile, inst.start,
                             inst.size)  # fmt: skip
                    gone.append(inst)
        return gone


def held_placements(pods: Iterable[Json]) -> set[tuple[str, int, int]]:
    """``(gpu, start, size)`` reserved by pods that are not finished (their
    ``hami.io/vgpu-mig-allocations``; one that does not decode holds nothing it names)."""
    out: set[tuple[str, int, int]] = set()
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        text = ((pod.get("metadata") or {}).get("annotations") or {}).get(MIG_ALLOCATIONS)
        if not text:
            continue
        try:
            entries = json.loads(hami_rustcore.normalize_mig_allocations(str(text)))
        except hami_rustcore.CoreError as exc:
            log.warning("pod %s: %s", (pod.get("metadata") or {}).get("name"), exc)
            continue
        for e in entries:
            out.add((e["gpuUUID"], e["placement"]["start"], e["placement"]["size"]))
    return out
