"""NVIDIA rules: HAMi's MutateAdmission defaults and its request derivation."""

from __future__ import annotations

from typing import Any

import pytest
from hami_common.settings import NvidiaConfig
from hami_webhook.rules import PERCENT_UNSET, AdmissionRefused, DeviceRequest, NvidiaRules
from hami_webhook.testing import container, pod


def _mutate(c: dict[str, Any], **config: Any) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    p = pod(c)
    wants = NvidiaRules(NvidiaConfig(**config)).mutate_container(p["spec"]["containers"][0], p)
    return wants, p["spec"]["containers"][0], p


def _env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", [])}


def test_bare_gpu_becomes_an_exclusive_card() -> None:
    wants, c, _ = _mutate(container(limits={"nvidia.com/gpu": "1"}))
    assert wants
    assert c["resources"]["limits"] == {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"}


def test_memory_without_count_gets_the_default_count_and_keeps_shared_cores() -> None:
    wants, c, _ = _mutate(container(limits={"nvidia.com/gpumem": "3000"}))
    assert wants
    assert c["resources"]["limits"] == {"nvidia.com/gpumem": "3000", "nvidia.com/gpu": "1"}


def test_default_gpu_num_zero_leaves_partial_requests_alone() -> None:
    wants, c, _ = _mutate(container(limits={"nvidia.com/gpucores": "30"}), default_gpu_num=0)
    assert not wants
    assert c["resources"]["limits"] == {"nvidia.com/gpucores": "30"}


def test_full_percentage_means_exclusive_cores_and_partial_does_not() -> None:
    _, full, _ = _mutate(
        container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "100"})
    )
    assert full["resources"]["limits"]["nvidia.com/gpucores"] == "100"
    _, half, _ = _mutate(
        container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"})
    )
    assert "nvidia.com/gpucores" not in half["resources"]["limits"]


def test_no_memory_resource_configured_means_exclusive_cores() -> None:
    _, c, _ = _mutate(
        container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}),
        resource_memory_name="",
    )
    assert c["resources"]["limits"]["nvidia.com/gpucores"] == "100"


def test_given_cores_are_kept() -> None:
    _, c, _ = _mutate(container(limits={"nvidia.com/gpu": "2", "nvidia.com/gpucores": "20"}))
    assert c["resources"]["limits"] == {"nvidia.com/gpu": "2", "nvidia.com/gpucores": "20"}


@pytest.mark.parametrize("value", ["101", "-1", "1k"])
def test_percentage_out_of_range_is_refused_with_the_range(value: str) -> None:
    with pytest.raises(AdmissionRefused, match="between 0 and 100") as err:
        _mutate(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": value}))
    assert err.value.code == 400
    assert "container main: nvidia.com/gpumem-percentage" in err.value.message


def test_percentage_in_requests_is_validated_too() -> None:
    with pytest.raises(AdmissionRefused):
        _mutate(container(requests={"nvidia.com/gpumem-percentage": "200"}))


def test_unparsable_quantity_is_refused_naming_the_resource() -> None:
    with pytest.raises(AdmissionRefused, match=r"nvidia\.com/gpumem-percentage is not a valid"):
        _mutate(container(limits={"nvidia.com/gpumem-percentage": "lots"}))


def test_priority_becomes_cuda_task_priority() -> None:
    _, c, _ = _mutate(container(limits={"nvidia.com/gpu": "1", "nvidia.com/priority": "1"}))
    assert _env(c) == {"CUDA_TASK_PRIORITY": "1"}


def test_core_policy_env_goes_on_every_container_and_replaces_duplicates() -> None:
    env = [{"name": "GPU_CORE_UTILIZATION_POLICY", "value": "default"}, {"name": "A", "value": "b"}]
    wants, c, _ = _mutate(container(env=env), gpu_core_policy="force")
    assert not wants
    assert c["env"] == [
        {"name": "GPU_CORE_UTILIZATION_POLICY", "value": "force"},
        {"name": "A", "value": "b"},
    ]


def test_overwrite_env_hides_gpus_from_containers_without_them() -> None:
    _, plain, _ = _mutate(container(), overwrite_env=True)
    assert _env(plain) == {"NVIDIA_VISIBLE_DEVICES": "none"}
    _, gpu, _ = _mutate(container(limits={"nvidia.com/gpu": "1"}), overwrite_env=True)
    assert "NVIDIA_VISIBLE_DEVICES" not in _env(gpu)
    _, off, _ = _mutate(container())
    assert "env" not in off


def test_runtime_class_is_set_only_when_the_pod_has_none() -> None:
    _, _, p = _mutate(container(limits={"nvidia.com/gpu": "1"}), runtime_class_name="nvidia")
    assert p["spec"]["runtimeClassName"] == "nvidia"
    c = container(limits={"nvidia.com/gpu": "1"})
    preset = pod(c, runtimeClassName="kata")
    NvidiaRules(NvidiaConfig(runtime_class_name="nvidia")).mutate_container(c, preset)
    assert preset["spec"]["runtimeClassName"] == "kata"
    _, _, none = _mutate(container(), runtime_class_name="nvidia")
    assert "runtimeClassName" not in none["spec"]


def test_custom_resource_names_are_honoured() -> None:
    wants, c, _ = _mutate(
        container(limits={"example.com/vgpu": "1"}),
        resource_count_name="example.com/vgpu",
        resource_core_name="example.com/vcores",
    )
    assert wants
    assert c["resources"]["limits"]["example.com/vcores"] == "100"


def _request(c: dict[str, Any], **config: Any) -> DeviceRequest | None:
    return NvidiaRules(NvidiaConfig(**config)).device_request(c)


def test_request_derivation_follows_hami() -> None:
    assert _request(container(limits={"nvidia.com/gpu": "2", "nvidia.com/gpumem": "1000"})) == (
        DeviceRequest("NVIDIA", 2, 1000, PERCENT_UNSET, 0)
    )
    # no memory at all: 100 percent, or defaultMemory when configured
    assert _request(container(limits={"nvidia.com/gpu": "1"})) == DeviceRequest(
        "NVIDIA", 1, 0, 100, 0
    )
    assert _request(container(limits={"nvidia.com/gpu": "1"}), default_memory=512) == (
        DeviceRequest("NVIDIA", 1, 512, PERCENT_UNSET, 0)
    )
    # percentage clamped, 0 means unset; cores default from the config
    got = _request(
        container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "0"}),
        default_cores=10,
    )
    assert got == DeviceRequest("NVIDIA", 1, 0, 100, 10)
    # memory factor multiplies gpumem
    got = _request(
        container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4"}), memory_factor=256
    )
    assert got is not None
    assert got.memory == 1024


@pytest.mark.parametrize(
    "limits",
    [
        {"nvidia.com/gpumem": "100"},
        {"nvidia.com/gpu": "0"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "-5"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1.5"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3Gi"},
        {"nvidia.com/gpu": "x"},
    ],
)
def test_no_request_without_a_valid_count_or_with_bad_memory(limits: dict[str, str]) -> None:
    assert _request(container(limits=limits)) is None


def test_requests_are_read_when_limits_lack_the_resource() -> None:
    got = _request(container(requests={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "10"}))
    assert got == DeviceRequest("NVIDIA", 1, 10, PERCENT_UNSET, 0)
