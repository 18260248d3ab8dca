"""The chart chips the tests and the e2e harness share are HAMi's chart's (charts/hami), and a
device config built from them loads as the services load theirs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hami_common.settings import load_device_config
from hami_common.settings.testing import CHART_CHIPS, device_config_text, vnpus

VALUES = Path(__file__).parents[3] / "charts" / "hami" / "values.yaml"


def test_chart_chips_are_the_charts_entries() -> None:
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    chart = {c["chipName"]: c for c in values["global"]["deviceConfig"]["vnpus"]["configs"]}
    for name, chip in CHART_CHIPS.items():
        differ = {k: (v, chart[name].get(k)) for k, v in chip.items() if chart[name].get(k) != v}
        assert differ == {}, f"{name}: (ours, the chart's) {differ}"


def test_a_built_config_loads_with_the_chips_in_order_and_their_extra_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "device-config.yaml"
    extra = {"310P3": {"runtimeClassName": "ascend"}}
    path.write_text(device_config_text(vnpus=vnpus("310P3", "910B3", soft=True, extra=extra)))
    config = load_device_config(path)
    assert [c.chip_name for c in config.vnpus.configs] == ["310P3", "910B3"]
    assert config.vnpus.hami_vnpu_core
    assert config.vnpus.configs[0].runtime_class_name == "ascend"
    assert [c["chipName"] for c in vnpus()["configs"]] == ["910B3", "310P3", "Ascend910"]


def test_an_unknown_chip_is_refused_naming_the_known() -> None:
    with pytest.raises(ValueError, match="no chart chip named '910X'; known: 910B3, 310P3"):
        vnpus("910X")
