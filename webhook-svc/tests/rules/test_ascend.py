"""Ascend rules: the pod fields and env of HAMi's MutateAdmission, given the core's answer."""

from __future__ import annotations

import json
from typing import Any

from hami_common.settings import AscendChipConfig, core_vendor_table, parse_device_config
from hami_rustcore import RequestModel
from hami_webhook.rules import AscendRules, rules_from_config
from hami_webhook.testing import container, pod


def _chip(common_word: str, **extra: Any) -> dict[str, Any]:
    return {
        "chipName": common_word.removeprefix("Ascend"),
        "commonWord": common_word,
        "resourceName": f"huawei.com/{common_word}",
        "resourceMemoryName": f"huawei.com/{common_word}-memory",
        "memoryAllocatable": 65536,
        "templates": [{"name": "vir05_1c_16g", "memory": 16384}],
        **extra,
    }


CONFIG = parse_device_config(
    {
        "vnpus": [
            _chip("Ascend910B3", overwriteEnv=True, runtimeClassName="ascend"),
            _chip("Ascend310P", overwriteEnv=True),
        ]
    }
)


def _mutate(p: dict[str, Any]) -> dict[str, Any]:
    """Every Ascend chip's rules on every container, with the core's answers."""
    model = RequestModel(core_vendor_table(CONFIG, enable_ascend=True))
    rules = rules_from_config(CONFIG, enable_ascend=True)
    for answer in model.admit(json.dumps(p)).containers:
        for rule in rules:
            rule.mutate_container(p["spec"]["containers"][answer.index], p, answer)
    return p


def _env(p: dict[str, Any], i: int) -> dict[str, str]:
    return {e["name"]: e["value"] for e in p["spec"]["containers"][i].get("env", [])}


def test_runtime_class_is_set_by_the_chip_asked_for() -> None:
    p = _mutate(pod(container(limits={"huawei.com/Ascend910B3": "1"})))
    assert p["spec"]["runtimeClassName"] == "ascend"
    p = _mutate(pod(container(limits={"huawei.com/Ascend310P": "1"})))
    assert "runtimeClassName" not in p["spec"]
    c = container(limits={"huawei.com/Ascend910B3": "1"})
    assert _mutate(pod(c, runtimeClassName="kata"))["spec"]["runtimeClassName"] == "kata"


def test_hami_bug_ascend_overwrite_env_spares_other_chips() -> None:
    # HAMi's rules of one chip give ASCEND_VISIBLE_DEVICES="" to every container without that
    # chip, so a 910B3 container was also told to see no NPU by the 310P rules.
    p = _mutate(pod(container("npu", limits={"huawei.com/Ascend910B3": "1"}), container("sidecar")))
    assert _env(p, 0) == {}
    assert _env(p, 1) == {"ASCEND_VISIBLE_DEVICES": ""}


def test_rules_follow_enable_ascend() -> None:
    assert [r.vendor for r in rules_from_config(CONFIG)] == ["NVIDIA", "MLU"]
    on = [r.vendor for r in rules_from_config(CONFIG, enable_ascend=True)]
    assert on == ["NVIDIA", "MLU", "Ascend910B3", "Ascend310P"]
    chip = AscendChipConfig.model_validate(_chip("Ascend910B4"))
    assert AscendRules(chip, ["Ascend910B4"]).vendor == "Ascend910B4"
