"""Huawei Ascend mutations beyond the request model (HAMi v2.10's ``MutateAdmission``,
reference ``hami-vendors.md`` §1.2), one `AscendRules` per chip of ``vnpus``.

The 910C rounding, the template and memory checks and the resolved memory written to limits and
requests come from the core (`hami_rustcore.RequestModel.admit`). What is left, per container:
1. a container asking for the chip sets the pod's ``runtimeClassName`` when the pod has none and
   the chip configures one;
2. ``overwriteEnv``: a container that asks for no Ascend NPU gets ``ASCEND_VISIBLE_DEVICES=""``.
   HAMi gives it to every container without *this* chip, so with two chips configured a
   container of one chip was also told to see no NPU by the other's rules; only containers
   without any Ascend NPU get it here.
"""

from __future__ import annotations

from collections.abc import Collection

from hami_common.settings import AscendChipConfig
from hami_rustcore import ContainerAdmission

from hami_webhook.rules.base import Json, set_env

VISIBLE_DEVICES_ENV = "ASCEND_VISIBLE_DEVICES"


class AscendRules:
    """`AdmissionRules` for one Ascend chip (``vendor`` is its ``commonWord``)."""

    def __init__(self, chip: AscendChipConfig, all_chips: Collection[str]) -> None:
        self.chip = chip
        self.vendor = chip.common_word
        self.all_chips = frozenset(all_chips)

    def mutate_container(self, container: Json, pod: Json, admitted: ContainerAdmission) -> None:
        if self.vendor in admitted.vendors:
            spec = pod["spec"]
            if spec.get("runtimeClassName") is None and self.chip.runtime_class_name:
                spec["runtimeClassName"] = self.chip.runtime_class_name
        elif self.chip.overwrite_env and self.all_chips.isdisjoint(admitted.vendors):
            set_env(container, VISIBLE_DEVICES_ENV, "")
