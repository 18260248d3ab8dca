"""The chip a node serves and how: the ``vnpus`` entry by DCMI's chip name, the node config's
soft-split switch, slot count and filters, and errors that name the key and file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_common.settings import SettingsError, load_device_config
from hami_plugin_ascend.config import PluginSettings, load_options, split_count
from hami_plugin_ascend.devices import FakeNpuBackend

NODE_CONFIG = """
nodes:
- name: n1
  hami-vnpu-core: true
  vDeviceCount: 2
  filterDevices: {uuid: [vdie-1], index: [2]}
- name: n2
"""


def _devices(chip: str, n: int = 3) -> list:  # type: ignore[type-arg]
    spec = [{"uuid": f"vdie-{i}", "index": i, "model": chip} for i in range(n)]
    return FakeNpuBackend({"devices": spec}).discover()


def test_the_chip_is_chosen_by_its_dcmi_name(device_config: Path) -> None:
    settings = PluginSettings(node_name="n9", device_config_file=device_config)
    options = load_options(settings, _devices("310P3"))
    assert options.chip.common_word == "Ascend310P"
    assert options.split_count == 7  # 21527 // 3072, as HAMi's VDeviceCount
    assert not options.soft
    assert options.vendor_table()["Ascend310P"]["kind"] == "ascend"


def test_the_node_config_overrides_and_filters(device_config: Path, tmp_path: Path) -> None:
    node_config = tmp_path / "node-config.yaml"
    node_config.write_text(NODE_CONFIG)
    settings = PluginSettings(node_name="n1", device_config_file=device_config,
                              node_config_file=node_config)  # fmt: skip
    options = load_options(settings, _devices("910B3"))
    assert (options.soft, options.split_count) == (True, 2)
    assert [d.uuid for d in _devices("910B3") if options.keeps(d)] == ["vdie-0"]
    other = PluginSettings(node_name="n2", device_config_file=device_config,
                           node_config_file=node_config)  # fmt: skip
    assert load_options(other, _devices("910B3")).split_count == 4


def test_bad_files_name_the_key(device_config: Path, tmp_path: Path) -> None:
    node_config = tmp_path / "node-config.yaml"
    node_config.write_text("nodes:\n- name: n1\n  vDeviceCount: -1\n")
    settings = PluginSettings(node_name="n1", device_config_file=device_config,
                              node_config_file=node_config)  # fmt: skip
    with pytest.raises(SettingsError, match=r"nodes\.0\.vDeviceCount"):
        load_options(settings, _devices("910B3"))
    with pytest.raises(SettingsError, match="NPUs of 2 chips"):
        load_options(settings, _devices("910B3") + _devices("310P3"))


def test_split_count_without_templates_is_one(device_config: Path) -> None:
    chip = load_device_config(device_config).vnpus.configs[0]
    assert split_count(chip.model_copy(update={"templates": []}), None) == 1
