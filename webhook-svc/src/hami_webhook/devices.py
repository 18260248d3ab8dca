"""The webhook's device model: the Rust core's request model and each vendor's mutation rules,
built from one device config.

The core's `RequestModel` is built from `hami_common.settings.core_vendor_table`, the table the
extender's `Cluster` is built from, so admission reads a pod exactly as the fit later does:
the same resource names, defaults, checks and quota amounts.
"""

from __future__ import annotations

from dataclasses import dataclass

from hami_common.settings import DeviceConfig, core_vendor_table
from hami_rustcore import RequestModel

from hami_webhook.rules import AdmissionRules, rules_from_config


@dataclass(frozen=True)
class DeviceModel:
    requests: RequestModel
    rules: tuple[AdmissionRules, ...]

    @classmethod
    def from_config(cls, config: DeviceConfig, *, enable_ascend: bool = False) -> DeviceModel:
        """``enable_ascend``: HAMi's ``--enable-ascend``, the chips of ``vnpus`` join."""
        return cls(
            RequestModel(core_vendor_table(config, enable_ascend=enable_ascend)),
            tuple(rules_from_config(config, enable_ascend=enable_ascend)),
        )

    @property
    def vendors(self) -> frozenset[str]:
        """The vendor keys whose pods the webhook takes over (those with mutation rules)."""
        return frozenset(r.vendor for r in self.rules)

    def quota_resources(self) -> list[str]:
        """Every resource name a namespace quota can cap: each vendor's memory and core names."""
        names: list[str] = []
        for spec in self.requests.vendor_specs().values():
            for key in ("resource_memory", "resource_cores"):
                name = spec[key]
                if isinstance(name, str) and name:
                    names.append(name)
        return names

    def memory_factors(self) -> dict[str, int]:
        """Memory resource name -> how many MiB one unit is (a quota limit is in units)."""
        factors: dict[str, int] = {}
        for spec in self.requests.vendor_specs().values():
            name, factor = spec["resource_memory"], spec["memory_factor"]
            if isinstance(name, str) and name and isinstance(factor, int):
                factors[name] = factor
        return factors
