"""Settings and HAMi's device config with per-node overrides: merged, and errors that name
the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hami_common.settings import NvidiaConfig, SettingsError
from hami_plugin_nvidia.config import PluginSettings, effective_options, load_options


def _node_config(tmp_path: Path, entry: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"nodeconfig": [{"name": "other"}, entry]}))
    return path


def test_node_entry_overrides_the_device_config(tmp_path: Path) -> None:
    nvidia = NvidiaConfig(device_split_count=4, device_memory_scaling=1.5, gpu_core_policy="force")
    path = _node_config(
        tmp_path,
        {
            "name": "n1",
            "devicesplitcount": 7,
            "devicecorescaling": 2,
            "libcudaloglevel": 3,
            "enablegetpreferredallocation": True,
            "filterdevices": {"uuid": ["GPU-x"], "index": [3]},
        },
    )
    opts = effective_options(nvidia, "n1", path, topology_score=True)
    assert (opts.split_count, opts.memory_scaling, opts.core_scaling) == (7, 1.5, 2.0)
    assert (opts.lib_cuda_log_level, opts.gpu_core_policy) == (3, "force")
    assert opts.preferred_allocation
    assert opts.topology_score
    assert opts.filter_uuids == {"GPU-x"}
    assert opts.filter_indexes == {3}
    # another node keeps the file's values
    assert effective_options(nvidia, "n2", path).split_count == 4


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"devicesplitcount": 0}, "nodeconfig.1.devicesplitcount"),
        ({"devicememoryscaling": -1}, "nodeconfig.1.devicememoryscaling"),
        ({"unknownkey": 1}, "nodeconfig.1.unknownkey"),
        ({"operatingmode": "time-slicing"}, "nodeconfig.1.operatingmode"),
        ({"filterdevices": {"index": ["x"]}}, "filterdevices.index: 'x' is not a device index"),
        ({"filterdevices": {"bus": ["x"]}}, "filterdevices: unknown key(s) ['bus']"),
    ],
)
def test_invalid_node_entries_name_the_key(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    path = _node_config(tmp_path, {"name": "n1", **entry})
    with pytest.raises(SettingsError) as err:
        effective_options(NvidiaConfig(), "n1", path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_settings_sources_and_errors(tmp_path: Path) -> None:
    s = PluginSettings.load(
        ["--node-name", "n1", "--backend", "fake"], {"HAMI_PLUGIN_ENABLE_TOPOLOGY_SCORE": "true"}
    )
    assert (s.node_name, s.backend, s.enable_topology_score) == ("n1", "fake", True)
    with pytest.raises(SettingsError, match="register_interval"):
        PluginSettings.load(["--node-name", "n1", "--register-interval", "0"], {})
    with pytest.raises(SettingsError, match="node_name"):
        PluginSettings.load([], {})


@pytest.mark.parametrize("mode", ["mig", "mps"])
def test_volcano_mode_refuses_mig_and_mps_nodes(tmp_path: Path, mode: str) -> None:
    path = _node_config(tmp_path, {"name": "n1", "operatingmode": mode})
    args = ["--node-name", "n1", "--backend", "fake", "--node-config-file", str(path)]
    assert load_options(PluginSettings.load(args, {})).operating_mode == mode
    volcano = PluginSettings.load([*args, "--scheduler", "volcano"], {})
    with pytest.raises(SettingsError, match=f"operatingmode: {mode} is not served in volcano"):
        load_options(volcano)


@pytest.mark.parametrize("path", [["--scheduler", "volcano"], ["--dra"]])
@pytest.mark.parametrize("strategy", ["single", "mixed"])
def test_static_mig_is_refused_where_it_is_not_served(path: list[str], strategy: str) -> None:
    args = ["--node-name", "n1", "--backend", "fake", "--mig-strategy", strategy]
    assert load_options(PluginSettings.load(args, {})).mig_strategy == strategy
    with pytest.raises(SettingsError, match=f"{strategy} serves MIG instances .* {path[0]}"):
        load_options(PluginSettings.load([*args, *path], {}))
