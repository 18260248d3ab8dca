"""The DCMI adapter: Huawei's device management library (``libdcmi.so``) through ctypes, behind
the `DeviceBackend` protocol. The only module that loads the vendor library (an import-linter
contract keeps it so).

Discovery walks DCMI's cards and the NPUs in each (``dcmi_get_card_list``,
``dcmi_get_device_num_in_card``) in logic-ID order, as HAMi's plugin lists them: for each NPU its
logic and physical IDs, the chip name (``dcmi_get_device_chip_info``), the VDIE die ID that
HAMi registers (``dcmi_get_device_die_v2``), the memory in MB (HBM, else DDR) and the health
code (0 is healthy). A query that fails makes that NPU unhealthy with the DCMI error, never the
process; only a library that cannot be loaded or initialised is a `BackendInitError`.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from hami_common.deviceplugin.backend import (
    BackendInitError,
    HealthChange,
    Links,
    PhysicalDevice,
)

from hami_plugin_ascend.devices import NpuDevice, die_id

log = logging.getLogger(__name__)

MAX_CARDS = 64
VDIE = 1
ERRORS = {
    -8001: "invalid parameter",
    -8002: "operation not permitted",
    -8005: "inner error",
    -8006: "timed out",
    -8007: "invalid device ID",
    -8008: "device does not exist",
    -8012: "not ready",
    -8013: "not supported in a container",
    -8255: "not supported",
}


class _ChipInfo(ctypes.Structure):
    _fields_ = [
        ("chip_type", ctypes.c_ubyte * 32),
        ("chip_name", ctypes.c_ubyte * 32),
        ("chip_ver", ctypes.c_ubyte * 32),
        ("aicore_cnt", ctypes.c_uint),
    ]


class _DieId(ctypes.Structure):
    _fields_ = [("soc_die", ctypes.c_uint * 5)]


class _HbmInfo(ctypes.Structure):
    _fields_ = [
        ("memory_size", ctypes.c_ulonglong),
        ("freq", ctypes.c_uint),
        ("memory_usage", ctypes.c_ulonglong),
        ("temp", ctypes.c_int),
        ("bandwith_util_rate", ctypes.c_uint),
    ]


class _MemoryInfo(ctypes.Structure):
    _fields_ = [
        ("memory_size", ctypes.c_ulonglong),
        ("memory_available", ctypes.c_ulonglong),
        ("freq", ctypes.c_uint),
        ("hugepagesize", ctypes.c_ulong),
        ("hugepages_total", ctypes.c_ulong),
        ("hugepages_free", ctypes.c_ulong),
        ("utiliza", ctypes.c_uint),
        ("reserve", ctypes.c_ubyte * 60),
    ]


class DcmiError(RuntimeError):
    def __init__(self, call: str, code: int) -> None:
        super().__init__(f"{call} failed: DCMI error {code} ({ERRORS.get(code, 'unknown')})")
        self.code = code


def _text(raw: ctypes.Array[ctypes.c_ubyte]) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")


class DcmiBackend:
    """NPUs through DCMI; health is polled every ``poll`` seconds."""

    def __init__(self, library: str = "libdcmi.so", *, poll: float = 5.0) -> None:
        self.poll = poll
        try:
            self._lib = ctypes.CDLL(library)
        except OSError as exc:
            raise BackendInitError(
                f"cannot load the DCMI library {library!r} ({exc}); install the Ascend driver, "
                "or name the library with --dcmi-library"
            ) from None
        try:
            self._call("dcmi_init")
        except (DcmiError, AttributeError) as exc:
            raise BackendInitError(f"DCMI did not initialise: {exc}") from None
        self._where: dict[str, tuple[int, int]] = {}

    def _call(self, name: str, *args: object) -> None:
        code = int(getattr(self._lib, name)(*args))
        if code != 0:
            raise DcmiError(name, code)

    def _npus(self) -> list[tuple[int, int]]:
        num = ctypes.c_int(0)
        cards = (ctypes.c_int * MAX_CARDS)()
        try:
            self._call("dcmi_get_card_list", ctypes.byref(num), cards, MAX_CARDS)
        except DcmiError as exc:
            raise BackendInitError(f"DCMI cannot list the NPU cards: {exc}") from None
        out = []
        for card in list(cards)[: num.value]:
            count = ctypes.c_int(0)
            try:
                self._call("dcmi_get_device_num_in_card", card, ctypes.byref(count))
            except DcmiError as exc:
                log.warning("card %d: %s; its NPUs are skipped", card, exc)
                continue
            out += [(card, device) for device in range(count.value)]
        return out

    def _memory_mib(self, card: int, device: int) -> int:
        hbm = _HbmInfo()
        try:
            self._call("dcmi_get_device_hbm_info", card, device, ctypes.byref(hbm))
            if hbm.memory_size > 0:
                return int(hbm.memory_size)
        except DcmiError:
            pass  # no HBM (310P): the DDR memory
        mem = _MemoryInfo()
        self._call("dcmi_get_device_memory_info_v3", card, device, ctypes.byref(mem))
        return int(mem.memory_size)

    def _npu(self, card: int, device: int) -> NpuDevice:
        logic = ctypes.c_int(0)
        self._call("dcmi_get_device_logic_id", ctypes.byref(logic), card, device)
        where = f"card {card} device {device} (logic ID {logic.value})"
        try:
            phy = ctypes.c_uint(0)
            self._call("dcmi_get_device_phyid_from_logicid", ctypes.c_uint(logic.value),
                       ctypes.byref(phy))  # fmt: skip
            chip = _ChipInfo()
            self._call("dcmi_get_device_chip_info", card, device, ctypes.byref(chip))
            die = _DieId()
            self._call("dcmi_get_device_die_v2", card, device, VDIE, ctypes.byref(die))
            memory = self._memory_mib(card, device)
        except DcmiError as exc:
            return NpuDevice(uuid=f"npu-{where.replace(' ', '-')}", index=logic.value, model="",
                             memory_mib=0, healthy=False, reason=f"{where}: {exc}",
                             logic_id=logic.value, card=card, device=device)  # fmt: skip
        healthy, reason = self._health(card, device)
        return NpuDevice(
            uuid=die_id(list(die.soc_die)),
            index=logic.value,
            model=_text(chip.chip_name),
            memory_mib=memory,
            healthy=healthy,
            reason=reason,
            phy_id=phy.value,
            logic_id=logic.value,
            card=card,
            device=device,
        )

    def _health(self, card: int, device: int) -> tuple[bool, str]:
        code = ctypes.c_uint(0)
        try:
            self._call("dcmi_get_device_health", card, device, ctypes.byref(code))
        except DcmiError as exc:
            return False, str(exc)
        if code.value != 0:
            return False, f"DCMI health code {code.value} (0 is healthy)"
        return True, ""

    def discover(self) -> list[PhysicalDevice]:
        """Every NPU, in logic-ID order; ``index`` is its position (HAMi's "continuous" index)."""
        found: list[NpuDevice] = []
        for card, device in self._npus():
            try:
                found.append(self._npu(card, device))
            except DcmiError as exc:
                log.warning("card %d device %d: %s; skipped", card, device, exc)
        found.sort(key=lambda d: d.logic_id)
        devices: list[PhysicalDevice] = [replace(d, index=i) for i, d in enumerate(found)]
        self._where = {d.uuid: (d.card, d.device) for d in found}
        return devices

    def links(self, devices: Sequence[PhysicalDevice]) -> Links:
        return {}  # HCCS groups follow from list positions (HAMi's NetworkID)

    async def health_events(self, devices: Sequence[PhysicalDevice]) -> AsyncIterator[HealthChange]:
        known = {d.uuid: d.healthy for d in devices}
        while True:
            await asyncio.sleep(self.poll)
            for uuid, (card, device) in self._where.items():
                if uuid not in known:
                    continue
                healthy, reason = self._health(card, device)
                if healthy != known[uuid]:
                    known[uuid] = healthy
                    yield HealthChange(uuid, healthy, reason)

    def close(self) -> None:
        """DCMI has no shutdown call."""
