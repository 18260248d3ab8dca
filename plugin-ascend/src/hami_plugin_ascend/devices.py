"""Ascend NPUs as the plugin sees them, and the fake backend the tests and e2e nodes use.

An NPU is known to the cluster by its VDIE die ID (HAMi registers it as the device ``id``), to
the container runtime by its physical ID (``ASCEND_VISIBLE_DEVICES``), and to DCMI by its card
and device numbers. `NpuDevice` carries all of them; `model` is DCMI's chip name (``910B3``),
which selects the chip's entry of the device config's ``vnpus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hami_common.deviceplugin.backend import PhysicalDevice
from hami_common.deviceplugin.testing import FakeBackend


@dataclass(frozen=True)
class NpuDevice(PhysicalDevice):
    phy_id: int = 0
    """The physical ID the Ascend runtime and ``ASCEND_VISIBLE_DEVICES`` use."""
    logic_id: int = 0
    card: int = 0
    device: int = 0
    """The NPU's number within its card (DCMI's ``device_id``)."""


def die_id(words: tuple[int, ...] | list[int]) -> str:
    """DCMI's VDIE die ID (five 32-bit words) as the register annotation's ``id``: each word in
    eight upper-case hex digits, joined by ``-``."""
    return "-".join(f"{w & 0xFFFFFFFF:08X}" for w in words)


class FakeNpuBackend(FakeBackend):
    """`FakeBackend` over a spec of NPUs: each device may give ``phy_id``, ``logic_id``,
    ``card`` and ``device`` (default: its index, its index, its index, 0); ``model`` is the
    chip name (``910B3``)."""

    def device_from_spec(self, dev: dict[str, Any]) -> PhysicalDevice:
        base = super().device_from_spec(dev)
        index = int(dev.get("index", 0))
        return NpuDevice(
            uuid=base.uuid,
            index=base.index,
            model=base.model,
            memory_mib=base.memory_mib,
            numa=base.numa,
            healthy=base.healthy,
            reason=base.reason,
            phy_id=int(dev.get("phy_id", index)),
            logic_id=int(dev.get("logic_id", index)),
            card=int(dev.get("card", index)),
            device=int(dev.get("device", 0)),
        )
