"""Per-vendor mutation rules. `rules_from_config` builds the enabled vendors' rules in order."""

from hami_common.settings import DeviceConfig

from hami_webhook.rules.base import AdmissionRules
from hami_webhook.rules.nvidia import NvidiaRules


def rules_from_config(config: DeviceConfig) -> list[AdmissionRules]:
    """Every vendor's rules, NVIDIA first. Ascend and Cambricon join here when implemented."""
    return [NvidiaRules(config.nvidia)]


__all__ = ["AdmissionRules", "NvidiaRules", "rules_from_config"]
