"""Ascend's `VendorPolicy`: HAMi's node registration and Allocate answer (reference
``hami-vendors.md`` §1.3, §1.6), for the one chip this node serves.

Registration: ``hami.io/node-register-<CW>`` (HAMi's JSON, no ``mode`` key, ``custominfo``
``{"NetworkID": n}`` on 910-series chips), ``hami.io/node-handshake-<CW>: Reported_<time>``
(rewritten whenever the scheduler asks with ``Requesting_...``) and ``hami-vnpu-core``.

Allocate, per container: ``ASCEND_VISIBLE_DEVICES`` (the NPUs' physical IDs, in annotation
order) and, in template mode, ``ASCEND_VNPU_SPECS`` (the vNPU template the Ascend runtime
creates); in hami-core mode HAMi's mounts and ``NPU_*`` env for libvnpu.so. The runtime JSON
``huawei.com/<CW>`` the scheduler wrote says which template or quota each NPU carries. Unlike
HAMi's plugin, the pod is marked ``bind-phase=success`` only once every container is allocated
(the framework's allocator), and a template on several NPUs is refused rather than handed to a
runtime that can only create it on one.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import hami_rustcore
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.backend import Links, PhysicalDevice
from hami_common.deviceplugin.vendor import CapacityResource, ContainerContext
from hami_common.k8s import KubeClient

from hami_plugin_ascend.config import AscendOptions
from hami_plugin_ascend.devices import NpuDevice

log = logging.getLogger(__name__)

MODE_ANNOTATION = "huawei.com/vnpu-mode"
SOFT_MODE = "hami-core"
NODE_SOFT_ANNOTATION = "hami-vnpu-core"
VISIBLE_DEVICES = "ASCEND_VISIBLE_DEVICES"
VNPU_SPECS = "ASCEND_VNPU_SPECS"
# hami-core mode: what HAMi's plugin mounts read-only from the host, at the same path
DRIVER_MOUNTS = (
    "/usr/local/bin/npu-smi",
    "/etc/ascend_install.info",
    "/usr/local/Ascend/driver/lib64/driver",
    "/usr/local/Ascend/driver/version.info",
)
REPORT_OFFSET = timedelta(seconds=1)  # HAMi's report_time_offset


def network_id(common_word: str, position: int) -> int | None:
    """HAMi's HCCS group of the NPU at a list position: 910C modules are all connected (0);
    other 910 chips split at position 4; other chips have none."""
    if not common_word.startswith("Ascend910"):
        return None
    if common_word == "Ascend910C":
        return 0
    return 0 if position < 4 else 1


class AscendPolicy:
    numa_topology = False
    preferred_allocation = False

    def __init__(
        self,
        options: AscendOptions,
        devices: Sequence[PhysicalDevice],
        *,
        hook_path: Path = Path("/usr/local/hami-vnpu-core"),
        shared_region: Path = Path("/usr/local/hami-shared-region"),
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        chip = options.chip
        self.options = options
        self.vendor = chip.common_word
        self.resource_name = chip.resource_name
        self.split_count = options.split_count
        self.register_annotation = f"hami.io/node-register-{self.vendor}"
        self.handshake_annotation = f"hami.io/node-handshake-{self.vendor}"
        self.runtime_annotation = f"huawei.com/{self.vendor}"
        self.hook_path = hook_path
        self.shared_region = shared_region
        self.now = now
        self._phy = {d.uuid: d.phy_id for d in devices if isinstance(d, NpuDevice)}
        self._registered = ""
        self._reported = ""

    @property
    def socket_name(self) -> str:
        return f"hami-ascend-{self.vendor}.sock"

    # -- registration -------------------------------------------------------------------------

    def node_devices(self, devices: Sequence[PhysicalDevice]) -> list[hami_rustcore.Device]:
        chip = self.options.chip
        core = 100 if self.options.soft else chip.ai_core
        out = []
        for position, dev in enumerate(devices):
            group = network_id(self.vendor, position)
            out.append(
                hami_rustcore.Device(
                    id=dev.uuid,
                    count=self.split_count,
                    devmem=chip.memory_allocatable,
                    devcore=core,
                    type=self.vendor,
                    vendor=self.vendor,
                    index=position,  # HAMi: "the index starts from 0 and is continuous"
                    health=dev.healthy,
                    custominfo_json=None if group is None else f'{{"NetworkID":{group}}}',
                )
            )
        return out

    def node_annotations(self, devices: Sequence[PhysicalDevice], links: Links) -> dict[str, str]:
        register = hami_rustcore.encode_node_devices(self.node_devices(devices), with_mode=False)
        if register != self._registered or not self._reported:
            self._registered = register
            stamp = (self.now() + REPORT_OFFSET).strftime("%Y.%m.%d %H:%M:%S")
            self._reported = f"Reported_{stamp}"
        return {
            self.register_annotation: register,
            self.handshake_annotation: self._reported,
            NODE_SOFT_ANNOTATION: "true" if self.options.soft else "false",
        }

    # -- Allocate -----------------------------------------------------------------------------

    def _runtime_info(self, ctx: ContainerContext) -> dict[str, tuple[str, int, int]]:
        ann = (ctx.pod.get("metadata") or {}).get("annotations") or {}
        text = ann.get(self.runtime_annotation)
        if not text:
            raise ValueError(
                f"pod has no {self.runtime_annotation} annotation: the scheduler that placed it "
                "did not say which template or share each NPU carries"
            )
        try:
            items = hami_rustcore.decode_ascend_runtime(str(text))
        except hami_rustcore.DecodeError as exc:
            raise ValueError(str(exc)) from None
        return {uuid: (temp, memory, core) for uuid, temp, memory, core in items}

    def container_response(self, ctx: ContainerContext) -> pb.ContainerAllocateResponse:
        if not ctx.devices:
            raise ValueError(f"container {ctx.container_name!r}: no NPU to allocate")
        info = self._runtime_info(ctx)
        phys: list[int] = []
        for dev in ctx.devices:
            if dev.uuid not in self._phy:
                raise ValueError(f"NPU {dev.uuid} is not on this node")
            if dev.uuid not in info:
                raise ValueError(
                    f"annotation {self.runtime_annotation} does not list NPU {dev.uuid}"
                )
            phys.append(self._phy[dev.uuid])
        resp = pb.ContainerAllocateResponse()
        resp.envs[VISIBLE_DEVICES] = ",".join(str(p) for p in phys)
        ann = (ctx.pod.get("metadata") or {}).get("annotations") or {}
        if ann.get(MODE_ANNOTATION) != SOFT_MODE:
            temps = [info[d.uuid][0] for d in ctx.devices if info[d.uuid][0]]
            if temps and len(ctx.devices) > 1:
                raise ValueError(
                    f"container {ctx.container_name!r}: vNPU template {temps[0]} on "
                    f"{len(ctx.devices)} NPUs; the Ascend runtime creates a template on one NPU "
                    "only: ask for whole NPUs"
                )
            if temps:
                resp.envs[VNPU_SPECS] = temps[0]
            return resp
        first = info[ctx.devices[0].uuid]
        self._soft_mounts(resp, ctx, phys[0], first)
        return resp

    def _soft_mounts(
        self,
        resp: pb.ContainerAllocateResponse,
        ctx: ContainerContext,
        phy: int,
        first: tuple[str, int, int],
    ) -> None:
        """HAMi's hami-core answer: the driver tools, libvnpu.so with ld.so.preload, the shared
        regions, and the quota env of the first NPU."""
        _, memory, core = first
        if memory:
            resp.envs["NPU_MEM_QUOTA"] = str(memory)
        if core:
            resp.envs["NPU_PRIORITY"] = str(core)
        resp.envs["NPU_GLOBAL_SHM_PATH"] = f"/hami-shared-region/{phy}_global_registry"
        resp.envs["NPU_LOCAL_SHM_PATH"] = "/hami-vnpu-shmem/vnpu_local_shmem"
        for path in DRIVER_MOUNTS:
            resp.mounts.add(container_path=path, host_path=path, read_only=True)
        hook = str(self.hook_path)
        resp.mounts.add(container_path="/hami-vnpu-core", host_path=hook, read_only=True)
        resp.mounts.add(
            container_path="/etc/ld.so.preload", host_path=f"{hook}/ld.so.preload", read_only=True
        )
        resp.mounts.add(
            container_path="/hami-shared-region", host_path=str(self.shared_region), read_only=False
        )
        folder = self.hook_path / "containers" / f"{ctx.pod_uid}_{ctx.container_name}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o777)  # noqa: S103 (the container's processes share it, as HAMi)
        resp.mounts.add(container_path="/hami-vnpu-shmem", host_path=str(folder), read_only=False)

    def allocated_annotations(
        self, pod: dict[str, Any], given: Sequence[ContainerContext]
    ) -> dict[str, str]:
        return {}

    async def release_locks(
        self, client: KubeClient, node: str, pod: dict[str, Any], *, done: bool
    ) -> None:
        """Ascend shares ``hami.io/mutex.lock`` (the framework's); no lock of its own."""

    def capacity_resources(self) -> Sequence[CapacityResource]:
        return ()
