"""NVIDIA rules: the env and pod fields of HAMi's MutateAdmission, given the core's answer."""

from __future__ import annotations

import json
from typing import Any

from hami_common.settings import NvidiaConfig
from hami_rustcore import RequestModel
from hami_webhook.rules import NvidiaRules
from hami_webhook.testing import container, pod


def _mutate(c: dict[str, Any], p: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    """Runs the rules on the pod's first container with the core's answer for it."""
    p = p if p is not None else pod(c)
    [admitted] = RequestModel().admit(json.dumps(p)).containers
    NvidiaRules(NvidiaConfig(**config)).mutate_container(p["spec"]["containers"][0], p, admitted)
    return p


def _env(p: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in p["spec"]["containers"][0].get("env", [])}


def test_priority_becomes_cuda_task_priority() -> None:
    p = _mutate(container(limits={"nvidia.com/gpu": "1", "nvidia.com/priority": "1"}))
    assert _env(p) == {"CUDA_TASK_PRIORITY": "1"}


def test_priority_only_in_requests_sets_nothing() -> None:
    # HAMi reads the priority from the limits only
    p = _mutate(container(limits={"nvidia.com/gpu": "1"}, requests={"nvidia.com/priority": "1"}))
    assert _env(p) == {}


def test_core_policy_env_goes_on_every_container_and_replaces_duplicates() -> None:
    env = [{"name": "GPU_CORE_UTILIZATION_POLICY", "value": "default"}, {"name": "A", "value": "b"}]
    p = _mutate(container(env=env), gpu_core_policy="force")
    assert p["spec"]["containers"][0]["env"] == [
        {"name": "GPU_CORE_UTILIZATION_POLICY", "value": "force"},
        {"name": "A", "value": "b"},
    ]


def test_overwrite_env_hides_gpus_from_containers_without_them() -> None:
    assert _env(_mutate(container(), overwrite_env=True)) == {"NVIDIA_VISIBLE_DEVICES": "none"}
    gpu = _mutate(container(limits={"nvidia.com/gpu": "1"}), overwrite_env=True)
    assert "NVIDIA_VISIBLE_DEVICES" not in _env(gpu)
    assert "env" not in _mutate(container())["spec"]["containers"][0]


def test_runtime_class_is_set_only_on_gpu_pods_without_one() -> None:
    p = _mutate(container(limits={"nvidia.com/gpu": "1"}), runtime_class_name="nvidia")
    assert p["spec"]["runtimeClassName"] == "nvidia"
    c = container(limits={"nvidia.com/gpu": "1"})
    preset = _mutate(c, pod(c, runtimeClassName="kata"), runtime_class_name="nvidia")
    assert preset["spec"]["runtimeClassName"] == "kata"
    assert "runtimeClassName" not in _mutate(container(), runtime_class_name="nvidia")["spec"]


def test_a_gpu_named_only_in_requests_is_not_a_gpu_container() -> None:
    # HAMi's MutateAdmission looks for the count in the limits
    p = _mutate(container(requests={"nvidia.com/gpu": "1"}), runtime_class_name="nvidia")
    assert "runtimeClassName" not in p["spec"]
