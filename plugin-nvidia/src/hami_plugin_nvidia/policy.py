"""NVIDIA's `VendorPolicy`: the register annotation and the Allocate answer, HAMi's way.

The answer (node-side reference §1.9) carries HAMi's env and mounts so HAMi-core and our hook
both work, and beyond HAMi a read-only per-container limits file
(``/etc/hami/vgpu-limits.conf``) that our hook prefers over env, so a process cannot raise its
own limit by editing its environment.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import hami_rustcore
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.backend import Links, PhysicalDevice
from hami_common.deviceplugin.vendor import CapacityResource, ContainerContext
from hami_common.k8s import KubeClient
from hami_common.protocol.annotations import MIG_ALLOCATIONS, NVIDIA_PAIR_SCORE

from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.mig import (
    MigError,
    MigManager,
    instance_count,
    registration,
)
from hami_plugin_nvidia.mps import MpsDaemons, MpsError, mps_env
from hami_plugin_nvidia.scores import pair_scores
from hami_plugin_nvidia.static_mig import StaticMig

log = logging.getLogger(__name__)

REGISTER_ANNOTATION = "hami.io/node-nvidia-register"
LIMITS_FILE = "/etc/hami/vgpu-limits.conf"
CORE_POLICIES = ("default", "force", "disable")
_INT32_MAX = 2**31 - 1


def hami_type(name: str) -> str:
    """HAMi's model name: NVML's name, prefixed ``NVIDIA-`` unless it starts with NVIDIA."""
    return name if name.startswith("NVIDIA") else f"NVIDIA-{name}"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "t", "true", "y", "yes", "on")


@dataclass(frozen=True)
class Mount:
    container_path: str
    host_path: str
    read_only: bool


@dataclass(frozen=True)
class HookEdits:
    """What the hook needs in a container: env and mounts (Allocate answers or CDI edits)."""

    env: dict[str, str]
    mounts: list[Mount]


class NvidiaPolicy:
    vendor = "NVIDIA"
    register_annotation = REGISTER_ANNOTATION

    def __init__(
        self,
        options: NvidiaOptions,
        *,
        hook_path: Path = Path("/usr/local"),
        lock_dir: Path = Path("/tmp/vgpulock"),  # noqa: S108
        version: str = "0.1.0",
        cache_id: Callable[[ContainerContext], str] | None = None,
        on_asymmetric: Callable[[list[tuple[str, str]]], None] | None = None,
        mig: MigManager | None = None,
        mps: MpsDaemons | None = None,
        static_mig: StaticMig | None = None,
    ) -> None:
        self.options = options
        self.resource_name = options.resource_name
        self.split_count = options.split_count
        self.numa_topology = options.numa_topology
        self.preferred_allocation = options.preferred_allocation
        self.hook_path = hook_path
        self.lock_dir = lock_dir
        self.version = version
        self.cache_id = cache_id or (lambda _ctx: str(uuid.uuid4()))
        self.on_asymmetric = on_asymmetric
        self.mig = mig
        self.mps = mps
        self.static_mig = static_mig  # --mig-strategy: MIG-mode GPUs served as their instances
        self.mig_gpus: set[str] = set()  # registered as MIG-mode GPUs
        self._mig_made: dict[tuple[str, int], list[dict[str, object]]] = {}

    @property
    def socket_name(self) -> str:
        return f"nvidia-{self.resource_name.rsplit('/', 1)[-1]}.sock"

    @property
    def vgpu_dir(self) -> Path:
        return self.hook_path / "vgpu"

    # -- registration -------------------------------------------------------------------------

    def node_devices(self, devices: Sequence[PhysicalDevice]) -> list[hami_rustcore.Device]:
        opts = self.options
        out = []
        for dev in devices:
            if self.static_mig is not None and dev.uuid in self.static_mig.gpus:
                continue  # static MIG: its instances are resources of their own, not shared
            if opts.operating_mode == "mig" and dev.mode == "mig":
                mig = self._mig_device(dev)
                if mig is not None:
                    out.append(mig)
                continue
            memory = dev.memory_mib or opts.preconfigured_memory_mib
            if memory <= 0 and dev.healthy:
                log.warning("device %s: no memory size known; not registered", dev.uuid)
                continue
            out.append(
                hami_rustcore.Device(
                    id=dev.uuid,
                    count=opts.split_count,
                    devmem=min(int(memory * opts.memory_scaling), _INT32_MAX),
                    devcore=int(opts.core_scaling * 100),
                    type=hami_type(dev.model),
                    vendor=self.vendor,
                    index=dev.index,
                    numa=dev.numa,
                    mode="mps" if opts.operating_mode == "mps" else dev.mode,
                    health=dev.healthy,
                )
            )
        return out

    def _mig_device(self, dev: PhysicalDevice) -> hami_rustcore.Device | None:
        """A MIG-mode GPU as HAMi registers it: its allowlisted profiles and their placements,
        the whole memory (no scaling), 100 cores, ``count`` the most instances it can hold."""
        profiles = registration(dev.model, self.options.mig_allowlist)
        if profiles is None or self.mig is None:
            log.warning("GPU %s (%s): MIG mode, but no allowlisted MIG profile for it (or no "
                        "MIG control); not registered", dev.uuid, dev.model)  # fmt: skip
            return None
        self.mig_gpus.add(dev.uuid)
        return hami_rustcore.Device(
            id=dev.uuid, count=instance_count(profiles), devmem=dev.memory_mib, devcore=100,
            type=hami_type(dev.model), vendor=self.vendor, index=dev.index, numa=dev.numa,
            mode="mig", health=dev.healthy, mig_profiles_json=profiles,
        )  # fmt: skip

    def node_annotations(self, devices: Sequence[PhysicalDevice], links: Links) -> dict[str, str]:
        out = {REGISTER_ANNOTATION: hami_rustcore.encode_node_devices(self.node_devices(devices))}
        if self.options.topology_score:
            scores, asymmetric = pair_scores(devices, links)
            if asymmetric and self.on_asymmetric is not None:
                self.on_asymmetric(asymmetric)
            out[NVIDIA_PAIR_SCORE] = hami_rustcore.encode_pair_scores(scores)
        return out

    # -- Allocate -----------------------------------------------------------------------------

    def _hamicore_values(
        self,
        *,
        who: str,
        memory_mib: Sequence[int],
        cores: int,
        cache_id: str,
        env: Mapping[str, str],
        limits: Mapping[str, str],
    ) -> dict[str, str]:
        """The limits, as env names: what goes into both the env and the limits file. ``who``
        names the container (or claim) in error messages."""
        values: dict[str, str] = {}
        for i, mib in enumerate(memory_mib):
            values[f"CUDA_DEVICE_MEMORY_LIMIT_{i}"] = f"{mib}m"
        values["CUDA_DEVICE_SM_LIMIT"] = str(cores)
        cache = f"{self.vgpu_dir}/{cache_id}.cache"
        values["CUDA_DEVICE_MEMORY_SHARED_CACHE"] = cache
        priority = env.get("CUDA_TASK_PRIORITY") or limits.get(self.options.priority_resource)
        if priority is not None:
            if not priority.strip().lstrip("-").isdigit():
                raise ValueError(f"{who}: CUDA_TASK_PRIORITY={priority!r} is not an integer")
            values["CUDA_TASK_PRIORITY"] = priority.strip()
        policy = env.get("GPU_CORE_UTILIZATION_POLICY")
        if self.options.disable_core_limit:
            policy = "disable"
        elif policy is None and self.options.gpu_core_policy != "default":
            policy = self.options.gpu_core_policy
        if policy is not None:
            if policy.lower() not in CORE_POLICIES:
                raise ValueError(
                    f"{who}: GPU_CORE_UTILIZATION_POLICY={policy!r} "
                    f"is not one of {', '.join(CORE_POLICIES)}"
                )
            values["GPU_CORE_UTILIZATION_POLICY"] = policy.lower()
        return values

    def _mig_response(self, ctx: ContainerContext) -> pb.ContainerAllocateResponse:
        """MIG: the reserved instances made (or adopted), visible by their MIG UUIDs; no hook
        (the hardware enforces the partition)."""
        if self.mig is None or any(d.uuid not in self.mig_gpus for d in ctx.devices):
            raise ValueError(
                f"container {ctx.container_name!r}: MIG and hook-shared GPUs in one container"
            )
        text = ((ctx.pod.get("metadata") or {}).get("annotations") or {}).get(MIG_ALLOCATIONS)
        if not text:
            raise ValueError(f"container {ctx.container_name!r}: MIG devices without "
                             f"{MIG_ALLOCATIONS} (the scheduler's reservation)")  # fmt: skip
        try:
            entries = json.loads(hami_rustcore.normalize_mig_allocations(str(text)))
        except hami_rustcore.CoreError as exc:
            raise ValueError(f"annotation {MIG_ALLOCATIONS}: {exc}") from None
        mine = sorted((e for e in entries if e["containerIndex"] == ctx.index),
                      key=lambda e: int(e["deviceIndex"]))  # fmt: skip
        if len(mine) != len(ctx.devices):
            raise ValueError(
                f"container {ctx.container_name!r}: {len(ctx.devices)} MIG device(s) but "
                f"{len(mine)} reservation(s) in {MIG_ALLOCATIONS}"
            )
        try:
            made = [self.mig.ensure(e) for e in mine]
        except MigError as exc:
            raise ValueError(f"container {ctx.container_name!r}: MIG instance: {exc}") from None
        self._mig_made[(ctx.pod_uid, ctx.index)] = made
        resp = pb.ContainerAllocateResponse()
        resp.envs["NVIDIA_VISIBLE_DEVICES"] = ",".join(str(e["migUUID"]) for e in made)
        return resp

    def _mps_response(self, ctx: ContainerContext) -> pb.ContainerAllocateResponse:
        """MPS: the GPU's control daemon run or joined, the container capped by MPS (its SM
        share and pinned memory), the daemon's pipe directory and shared memory mounted; no
        hook."""
        gpus = list(dict.fromkeys(d.uuid for d in ctx.devices))
        if self.mps is None or len(gpus) != 1:
            raise ValueError(f"container {ctx.container_name!r}: MPS mode gives a container "
                             f"one GPU (one control daemon), not {len(gpus)}")  # fmt: skip
        try:
            pipe = self.mps.ensure(gpus[0])
        except MpsError as exc:
            raise ValueError(f"container {ctx.container_name!r}: {exc}") from None
        resp = pb.ContainerAllocateResponse()
        resp.envs["NVIDIA_VISIBLE_DEVICES"] = gpus[0]
        mems = [d.usedmem for d in ctx.devices]
        resp.envs.update(mps_env(ctx.devices[0].usedcores, mems, pipe))
        resp.mounts.add(container_path=str(pipe), host_path=str(pipe), read_only=False)
        # The server's and its clients' shared memory (`hami_plugin_nvidia.mps`).
        resp.mounts.add(container_path="/dev/shm", host_path=str(self.mps.shm_dir),  # noqa: S108
                        read_only=False)  # fmt: skip
        return resp

    def hook_edits(
        self,
        *,
        who: str,
        owner: str,
        key: str,
        uuids: Sequence[str],
        memory_mib: Sequence[int],
        cores: int,
        cache_id: str,
        env: Mapping[str, str] | None = None,
        limits: Mapping[str, str] | None = None,
    ) -> HookEdits:
        """What a container needs for the hook to enforce ``memory_mib`` (per device, in the
        order of ``uuids``) and ``cores``: env, mounts, and on the host the per-``key`` folder
        and read-only limits file. Shared by Allocate (``key`` = pod uid and container) and the
        DRA driver's prepare (``key`` = the claim); ``owner`` heads the limits file.
        ``env``/``limits``: the container's own (priority, core policy, CUDA_DISABLE_CONTROL),
        when known."""
        env = env or {}
        values = self._hamicore_values(
            who=who, memory_mib=memory_mib, cores=cores, cache_id=cache_id, env=env,
            limits=limits or {},
        )  # fmt: skip
        out: dict[str, str] = {"NVIDIA_VISIBLE_DEVICES": ",".join(dict.fromkeys(uuids))}
        out.update(values)
        if self.options.memory_scaling > 1:
            out["CUDA_OVERSUBSCRIBE"] = "true"
        out["LIBCUDA_LOG_LEVEL"] = str(self.options.lib_cuda_log_level)

        disable_control = _truthy(env.get("CUDA_DISABLE_CONTROL"))
        container_dir = self.vgpu_dir / "containers" / key
        limits_file = self.vgpu_dir / "limits" / f"{key}.conf"
        self._prepare(container_dir, limits_file, values, disable_control, owner)

        lib = self.vgpu_dir / "libvgpu.so"
        versioned = self.vgpu_dir / f"libvgpu.so.{self.version}"
        vgpu = str(self.vgpu_dir)
        mounts = [
            Mount(str(lib), str(versioned if versioned.exists() else lib), True),
            Mount(vgpu, str(container_dir), False),
            Mount("/tmp/vgpulock", str(self.lock_dir), False),  # noqa: S108
        ]
        if not disable_control:
            mounts.append(Mount("/etc/ld.so.preload", f"{vgpu}/ld.so.preload", True))
        mounts.append(Mount(LIMITS_FILE, str(limits_file), True))
        if (self.vgpu_dir / "license").exists():
            mounts.append(Mount("/tmp/license", f"{vgpu}/license", True))  # noqa: S108
            mounts.append(Mount("/usr/bin/vgpuvalidator", f"{vgpu}/vgpuvalidator", True))
        return HookEdits(out, mounts)

    def remove_hook_files(self, key: str) -> None:
        """Removes what `hook_edits` wrote on the host for ``key`` (nothing there is fine)."""
        shutil.rmtree(self.vgpu_dir / "containers" / key, ignore_errors=True)
        (self.vgpu_dir / "limits" / f"{key}.conf").unlink(missing_ok=True)

    def container_response(self, ctx: ContainerContext) -> pb.ContainerAllocateResponse:
        if not ctx.devices:
            raise ValueError(f"container {ctx.container_name!r}: no device to allocate")
        if any(d.uuid in self.mig_gpus for d in ctx.devices):
            return self._mig_response(ctx)
        if self.options.operating_mode == "mps":
            return self._mps_response(ctx)
        meta = ctx.pod.get("metadata") or {}
        edits = self.hook_edits(
            who=f"container {ctx.container_name!r}",
            owner=f"pod {meta.get('namespace')}/{meta.get('name')}, container {ctx.container_name}",
            key=f"{ctx.pod_uid}_{ctx.container_name}",
            uuids=[d.uuid for d in ctx.devices],
            memory_mib=[d.usedmem for d in ctx.devices],
            cores=ctx.devices[0].usedcores,
            cache_id=self.cache_id(ctx),
            env=ctx.env(),
            limits=ctx.limits(),
        )
        resp = pb.ContainerAllocateResponse()
        resp.envs.update(edits.env)
        for m in edits.mounts:
            resp.mounts.add(container_path=m.container_path, host_path=m.host_path,
                            read_only=m.read_only)  # fmt: skip
        return resp

    def allocated_annotations(
        self, pod: dict[str, object], given: Sequence[ContainerContext]
    ) -> dict[str, str]:
        """Dynamic MIG: the reservation with the runtime identity of the instances made for
        these containers (as HAMi's plugin patches it); nothing otherwise."""
        made = [e for ctx in given for e in self._mig_made.pop((ctx.pod_uid, ctx.index), [])]
        if not made:
            return {}
        meta = pod.get("metadata")
        annotations = meta.get("annotations") if isinstance(meta, dict) else None
        text = annotations.get(MIG_ALLOCATIONS) if isinstance(annotations, dict) else None
        entries = json.loads(hami_rustcore.normalize_mig_allocations(str(text or "[]")))
        done = {(e["containerIndex"], e["deviceIndex"]): e for e in made}
        merged = [done.get((e["containerIndex"], e["deviceIndex"]), e) for e in entries]
        return {MIG_ALLOCATIONS: hami_rustcore.normalize_mig_allocations(json.dumps(merged))}

    async def release_locks(
        self, client: KubeClient, node: str, pod: dict[str, object], *, done: bool
    ) -> None:
        """NVIDIA has no lock of its own (the shared ``hami.io/mutex.lock`` is the
        framework's)."""

    def capacity_resources(self) -> Sequence[CapacityResource]:
        """Static MIG (`hami_plugin_nvidia.static_mig`): the existing instances, one resource
        per profile (``mixed``) or in place of ``nvidia.com/gpu`` (``single``)."""
        if self.static_mig is None:
            return ()
        return self.static_mig.resources(self.resource_name, self.socket_name)

    def _prepare(
        self,
        container_dir: Path,
        limits_file: Path,
        values: dict[str, str],
        disable_control: bool,
        owner: str,
    ) -> None:
        """The per-container folder (fresh, 0777 as HAMi), the lock folder, the limits file
        (written to a temporary name and renamed, 0444)."""
        shutil.rmtree(container_dir, ignore_errors=True)
        container_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(container_dir, 0o777)  # noqa: S103 (the container's processes share it)
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.lock_dir, 0o777)  # noqa: S103
        limits_file.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f"# written by hami-plugin-nvidia for {owner}",
            *(f"{k}={v}" for k, v in values.items()),
            f"CUDA_DISABLE_CONTROL={'true' if disable_control else 'false'}",
        ]
        staged = limits_file.with_name(f".{limits_file.name}.{os.getpid()}")
        staged.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.chmod(staged, 0o444)
        staged.replace(limits_file)
