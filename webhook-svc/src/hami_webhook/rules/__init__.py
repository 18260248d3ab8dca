"""Per-vendor mutation rules. `rules_from_config` builds the enabled vendors' rules in order."""

from hami_common.settings import DeviceConfig

from hami_webhook.rules.ascend import AscendRules
from hami_webhook.rules.base import AdmissionRules
from hami_webhook.rules.cambricon import CambriconRules
from hami_webhook.rules.nvidia import NvidiaRules


def rules_from_config(config: DeviceConfig, *, enable_ascend: bool = False) -> list[AdmissionRules]:
    """Every vendor's rules: NVIDIA, Cambricon, then (HAMi's ``--enable-ascend``) one per Ascend
    chip of ``vnpus``."""
    rules: list[AdmissionRules] = [NvidiaRules(config.nvidia), CambriconRules()]
    if enable_ascend:
        chips = [chip.common_word for chip in config.vnpus.configs]
        rules += [AscendRules(chip, chips) for chip in config.vnpus.configs]
    return rules


__all__ = ["AdmissionRules", "AscendRules", "CambriconRules", "NvidiaRules", "rules_from_config"]
