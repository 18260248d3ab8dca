"""Cambricon MLUs as the plugin sees them, the sMLU instances it makes, and the fake backend the
tests and e2e nodes use.

HAMi knows an MLU only by its place on the node (``<node>-cambricon-mlu-<i>``, synthesized from
node capacity); the plugin maps it to the card's slot (CNDev's device index, ``/dev/cambricon_dev
<slot>``). An Allocate carves an sMLU instance out of the MLU with the share HAMi chose (a
percentage of its cores and MiB of its memory), through CNDev in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hami_common.deviceplugin.backend import DeviceBackend, PhysicalDevice
from hami_common.deviceplugin.testing import FakeBackend


@dataclass(frozen=True)
class MluDevice(PhysicalDevice):
    slot: int = 0
    """CNDev's device index: ``/dev/cambricon_dev<slot>``."""


@dataclass(frozen=True)
class SmluInstance:
    """An sMLU instance: what Cambricon's plugin records as
    ``CAMBRICON_DSMLU_PROFILE_INSTANCE: <profile>_<handle>_<slot>_<instance>``."""

    profile_id: int
    handle: int
    slot: int
    instance_id: int
    dev_node: str
    """The instance's own device node."""

    @property
    def annotation(self) -> str:
        return f"{self.profile_id}_{self.handle}_{self.slot}_{self.instance_id}"


class SmluError(RuntimeError):
    """CNDev refused to make the sMLU instance (the message says why)."""


class SmluBackend(DeviceBackend, Protocol):
    """A `DeviceBackend` that can also carve sMLU instances."""

    def create_smlu(self, slot: int, quota: int, memory_mib: int) -> SmluInstance:
        """An sMLU of ``quota`` percent of the cores and ``memory_mib`` MiB on MLU ``slot``,
        reusing a profile of that size; raises `SmluError`."""
        ...


class FakeMluBackend(FakeBackend):
    """`FakeBackend` over a spec of MLUs (``index`` is the slot); sMLU instances are counted, at
    most ``smlu_limit`` per MLU, as CNDev refuses more."""

    def __init__(self, *args: Any, smlu_limit: int = 16, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.smlu_limit = smlu_limit
        self.profiles: dict[tuple[int, int, int], int] = {}
        self.instances: list[SmluInstance] = []

    def device_from_spec(self, dev: dict[str, Any]) -> PhysicalDevice:
        base = super().device_from_spec(dev)
        return MluDevice(
            uuid=base.uuid, index=base.index, model=base.model, memory_mib=base.memory_mib,
            numa=base.numa, healthy=base.healthy, reason=base.reason, slot=base.index,
        )  # fmt: skip

    def create_smlu(self, slot: int, quota: int, memory_mib: int) -> SmluInstance:
        on_slot = [i for i in self.instances if i.slot == slot]
        if len(on_slot) >= self.smlu_limit:
            raise SmluError(f"MLU {slot} holds {len(on_slot)} sMLU instances already")
        profile = self.profiles.setdefault((slot, quota, memory_mib), len(self.profiles) + 1)
        number = len(self.instances) + 1
        instance = SmluInstance(profile, 5000 + number, slot, number,
                                f"/dev/cambricon-smlu{slot}/smlu{number}")  # fmt: skip
        self.instances.append(instance)
        return instance


def slots(devices: Sequence[PhysicalDevice]) -> list[int]:
    """Each MLU's slot in node order (the order HAMi's synthesized IDs count in)."""
    return [d.slot if isinstance(d, MluDevice) else d.index for d in devices]
