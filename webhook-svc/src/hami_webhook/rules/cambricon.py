"""Cambricon MLU: HAMi's ``MutateAdmission`` mutates nothing (reference ``hami-vendors.md``
§2.2); it only says whether a container asks for MLUs (``cambricon.com/vmlu`` in its limits),
which makes the pod ours to place. The core answers that (`ContainerAdmission.vendors`)."""

from __future__ import annotations

from hami_rustcore import ContainerAdmission

from hami_webhook.rules.base import Json


class CambriconRules:
    """`AdmissionRules` for Cambricon MLUs: no mutation of its own."""

    vendor = "MLU"

    def mutate_container(self, container: Json, pod: Json, admitted: ContainerAdmission) -> None:
        return None
