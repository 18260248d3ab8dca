"""HAMi's device ConfigMap: HAMi defaults, camelCase keys, strict validation naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_common.settings import (
    DeviceConfig,
    SettingsError,
    load_device_config,
    load_node_config,
    parse_device_config,
)

# A trimmed copy of the shape of HAMi's chart device-config.yaml (v2.10), written for this test.
CHART_LIKE = """
nvidia:
  resourceCountName: nvidia.com/gpu
  resourceMemoryName: nvidia.com/gpumem
  resourceMemoryPercentageName: nvidia.com/gpumem-percentage
  resourceCoreName: nvidia.com/gpucores
  resourcePriorityName: nvidia.com/priority
  overwriteEnv: false
  defaultMemory: 0
  defaultCores: 0
  defaultGPUNum: 1
  memoryFactor: 1
  deviceSplitCount: 10
  deviceMemoryScaling: 1
  deviceCoreScaling: 1
  gpuCorePolicy: default
  libCudaLogLevel: 1
  runtimeClassName: ""
  migProfileAllowlist:
    - models: ["A100-SXM4-40GB"]
      profiles: ["1g.5gb", "2g.10gb", "3g.20gb", "7g.40gb"]
cambricon:
  resourceCountName: cambricon.com/vmlu
  resourceMemoryName: cambricon.com/mlu.smlu.vmemory
  resourceCoreName: cambricon.com/mlu.smlu.vcore
hygon:
  resourceCountName: hygon.com/dcunum
vnpus:
  - chipName: 910B3
    commonWord: Ascend910B3
    resourceName: huawei.com/Ascend910B3
    resourceMemoryName: huawei.com/Ascend910B3-memory
    memoryAllocatable: 65536
    memoryCapacity: 65536
    aiCore: 20
    aiCPU: 7
    templates:
      - {name: vir05_1c_16g, memory: 16384, aiCore: 5, aiCPU: 1}
"""


def test_defaults_are_hamis() -> None:
    nv = DeviceConfig().nvidia
    assert nv.resource_count_name == "nvidia.com/gpu"
    assert nv.resource_memory_name == "nvidia.com/gpumem"
    assert nv.resource_memory_percentage_name == "nvidia.com/gpumem-percentage"
    assert nv.resource_core_name == "nvidia.com/gpucores"
    assert nv.resource_priority_name == "nvidia.com/priority"
    assert (nv.default_memory, nv.default_cores, nv.default_gpu_num) == (0, 0, 1)
    assert (nv.device_split_count, nv.device_memory_scaling, nv.device_core_scaling) == (10, 1, 1)
    assert (nv.overwrite_env, nv.gpu_core_policy, nv.lib_cuda_log_level) == (False, "default", 1)
    assert DeviceConfig().cambricon.resource_count_name == "cambricon.com/vmlu"


def test_chart_like_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "device-config.yaml"
    path.write_text(CHART_LIKE)
    cfg = load_device_config(path)
    assert cfg.nvidia.mig_profile_allowlist[0].profiles[-1] == "7g.40gb"
    assert cfg.vnpus.configs[0].templates[0].ai_cpu == 1
    assert cfg.hygon == {"resourceCountName": "hygon.com/dcunum"}


def test_values_override_defaults_by_wire_name() -> None:
    cfg = parse_device_config(
        {"nvidia": {"deviceSplitCount": 4, "defaultGPUNum": 0, "libCudaLogLevel": "3"}}
    )
    assert (cfg.nvidia.device_split_count, cfg.nvidia.default_gpu_num) == (4, 0)
    assert cfg.nvidia.lib_cuda_log_level == 3


def test_every_problem_names_its_key_path() -> None:
    with pytest.raises(SettingsError) as err:
        parse_device_config(
            {
                "nvidia": {"deviceSplitCount": 0, "defaultCores": 101, "gpuCorePolicy": "x"},
                "nvidai": {},
            }
        )
    text = str(err.value)
    assert "nvidia.deviceSplitCount: Input should be greater than or equal to 1" in text
    assert "nvidia.defaultCores: Input should be less than or equal to 100" in text
    assert "nvidia.gpuCorePolicy: Input should be 'default', 'force' or 'disable'" in text
    assert "nvidai: Extra inputs are not permitted" in text


def test_mig_profiles_are_validated() -> None:
    with pytest.raises(SettingsError, match="MIG profile 'big' must look like"):
        parse_device_config(
            {"nvidia": {"migProfileAllowlist": [{"models": ["A30"], "profiles": ["big"]}]}}
        )
    with pytest.raises(SettingsError, match=r"migProfileAllowlist\.0\.models"):
        parse_device_config(
            {"nvidia": {"migProfileAllowlist": [{"models": [], "profiles": ["1g.6gb"]}]}}
        )


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read it"):
        load_device_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nvidia: [\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_device_config(bad)


def test_node_config_picks_the_entry_of_this_node(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        '{"nodeconfig": [{"name": "n1", "operatingmode": "mig", "devicesplitcount": 3},'
        ' {"name": "n2", "filterdevices": {"uuid": ["GPU-a"], "index": [1]}}]}'
    )
    nodes = load_node_config(path)
    n1 = nodes.for_node("n1")
    assert n1 is not None
    assert (n1.operatingmode, n1.devicesplitcount) == ("mig", 3)
    assert nodes.for_node("n3") is None
    path.write_text('{"nodeconfig": [{"name": "n1", "devicesplitcount": 0}]}')
    with pytest.raises(SettingsError, match=r"nodeconfig\.0\.devicesplitcount"):
        load_node_config(path)


VNPUS_V210 = """
vnpus:
  hamiVnpuCore: true
  configs:
  - chipName: 310P3
    commonWord: Ascend310P
    resourceName: huawei.com/Ascend310P
    resourceMemoryName: huawei.com/Ascend310P-memory
    resourceCoreName: huawei.com/Ascend310P-core
    memoryAllocatable: 21527
    memoryCapacity: 24576
    aiCore: 8
    aiCPU: 7
    templates:
      - {name: vir01, memory: 3072, aiCore: 1, aiCPU: 1}
"""


def test_vnpus_in_hamis_v2_10_layout(tmp_path: Path) -> None:
    path = tmp_path / "device-config.yaml"
    path.write_text(VNPUS_V210)
    cfg = load_device_config(path)
    assert cfg.vnpus.hami_vnpu_core
    assert cfg.ascend_soft_default
    assert cfg.vnpus.configs[0].common_word == "Ascend310P"
    assert cfg.vnpus.configs[0].memory_capacity == 24576


def test_two_chips_may_not_share_a_name() -> None:
    chip = {
        "chipName": "910B3",
        "commonWord": "Ascend910B3",
        "resourceName": "huawei.com/Ascend910B3",
        "resourceMemoryName": "huawei.com/Ascend910B3-memory",
        "memoryAllocatable": 65536,
    }
    with pytest.raises(SettingsError, match="'Ascend910B3' is used by two chips"):
        parse_device_config({"vnpus": [chip, {**chip, "chipName": "910B4"}]})
    with pytest.raises(SettingsError, match=r"vnpus\.configs\.0\.memoryAllocatable"):
        parse_device_config({"vnpus": {"configs": [{**chip, "memoryAllocatable": 0}]}})
