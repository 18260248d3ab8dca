"""Admitter: which pods are touched, refusals that say what to change, quota, trace annotation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hami_common.k8s import ConnectionFailed
from hami_common.settings import DeviceConfig, NvidiaConfig
from hami_webhook.admission import AdmissionPolicy, Admitter, Decision
from hami_webhook.devices import DeviceModel
from hami_webhook.namespaces import InMemoryNamespaceSource
from hami_webhook.patch import apply_patch
from hami_webhook.quota import InMemoryQuotaSource, QuotaState
from hami_webhook.testing import container, pod

GPU = {"nvidia.com/gpu": "1"}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _decide(
    p: Any,
    *,
    scheduler: str = "hami-scheduler",
    force: bool = True,
    quota: Any = None,
    namespaces: Any = None,
    traceparent: str | None = TRACEPARENT,
    **config: Any,
) -> Decision:
    admitter = Admitter(
        _model(**config),
        AdmissionPolicy(scheduler, force),
        quota=quota,
        namespaces=namespaces,
    )
    return asyncio.run(admitter.decide("default", p, traceparent))


def _model(**config: Any) -> DeviceModel:
    return DeviceModel.from_config(DeviceConfig(nvidia=NvidiaConfig(**config)))


def _after(p: dict[str, Any], decision: Decision) -> dict[str, Any]:
    result: dict[str, Any] = apply_patch(p, decision.patch)
    return result


def test_device_pod_gets_scheduler_defaults_and_trace_context() -> None:
    p = pod(container(limits=GPU))
    decision = _decide(p)
    assert (decision.allowed, decision.reason, decision.has_resource) == (True, "mutated", True)
    after = _after(p, decision)
    assert after["spec"]["schedulerName"] == "hami-scheduler"
    assert after["metadata"]["annotations"] == {"hami.io/trace-context": TRACEPARENT}
    assert p["spec"].get("schedulerName") is None  # the input is never mutated


def test_pod_without_devices_gets_no_patch_and_no_trace() -> None:
    decision = _decide(pod(container()))
    assert (decision.allowed, decision.reason, decision.patch) == (True, "no-devices", [])


def test_pod_without_devices_still_gets_env_mutations() -> None:
    p = pod(container())
    after = _after(p, _decide(p, overwrite_env=True))
    assert after["spec"]["containers"][0]["env"] == [
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"}
    ]
    assert "schedulerName" not in after["spec"]


def test_ignore_label_on_the_pod_leaves_it_alone() -> None:
    decision = _decide(pod(container(limits=GPU), labels={"hami.io/webhook": "ignore"}))
    assert (decision.allowed, decision.reason, decision.patch) == (True, "ignored", [])


def test_ignore_label_on_the_namespace_leaves_it_alone() -> None:
    namespaces = InMemoryNamespaceSource({"default": {"hami.io/webhook": "ignore"}})
    decision = _decide(pod(container(limits=GPU)), namespaces=namespaces)
    assert (decision.reason, decision.patch) == ("ignored", [])
    other = InMemoryNamespaceSource({"default": {"hami.io/webhook": "enabled"}})
    assert _decide(pod(container(limits=GPU)), namespaces=other).reason == "mutated"


@pytest.mark.parametrize(
    ("pod_scheduler", "force", "ours", "touched"),
    [
        ("", True, "hami-scheduler", True),
        ("default-scheduler", True, "hami-scheduler", True),
        ("default-scheduler", False, "hami-scheduler", False),
        ("hami-scheduler", False, "hami-scheduler", True),
        ("volcano", True, "hami-scheduler", False),
        ("volcano", True, "", False),
        ("default-scheduler", True, "", True),
    ],
)
def test_scheduler_name_gate(pod_scheduler: str, force: bool, ours: str, touched: bool) -> None:
    spec = {"schedulerName": pod_scheduler} if pod_scheduler else {}
    p = pod(container(limits=GPU), **spec)
    decision = _decide(p, scheduler=ours, force=force)
    assert (decision.reason != "other-scheduler") is touched
    if touched and ours:
        assert _after(p, decision)["spec"]["schedulerName"] == ours
    if touched and not ours:
        assert _after(p, decision)["spec"]["schedulerName"] == pod_scheduler


def test_no_containers_is_refused() -> None:
    decision = _decide(pod())
    assert not decision.allowed
    assert decision.message == "pod has no containers; add at least one container"


def test_privileged_container_with_shared_devices_is_refused_saying_what_to_remove() -> None:
    p = pod(container("sidecar", privileged=True), container("main", limits=GPU))
    decision = _decide(p)
    assert (decision.allowed, decision.code, decision.reason) == (False, 403, "privileged")
    assert decision.message is not None
    assert "container sidecar is privileged" in decision.message
    assert "remove securityContext.privileged" in decision.message
    assert _decide(pod(container(privileged=True))).allowed  # no devices: not our business


def test_preset_node_name_is_refused_pointing_at_node_selector() -> None:
    decision = _decide(pod(container(limits=GPU), nodeName="gpu-node-1"))
    assert not decision.allowed
    assert decision.message is not None
    assert "use spec.nodeSelector (kubernetes.io/hostname: gpu-node-1)" in decision.message
    # without a scheduler name of ours, HAMi does not check nodeName either
    assert _decide(pod(container(limits=GPU), nodeName="n"), scheduler="").allowed


def test_percentage_out_of_range_is_a_400_refusal() -> None:
    p = pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "120"}))
    decision = _decide(p)
    assert (decision.allowed, decision.code, decision.reason) == (False, 400, "invalid-request")


def _limits_after(limits: dict[str, str], **config: Any) -> dict[str, str]:
    p = pod(container(limits=limits))
    decision = _decide(p, **config)
    assert decision.allowed, decision.message
    result: dict[str, str] = _after(p, decision)["spec"]["containers"][0]["resources"]["limits"]
    return result


@pytest.mark.parametrize(
    ("limits", "config", "added"),
    [
        ({"nvidia.com/gpu": "1"}, {}, {"nvidia.com/gpucores": "100"}),
        ({"nvidia.com/gpumem": "3000"}, {}, {"nvidia.com/gpu": "1"}),
        ({"nvidia.com/gpumem": "3000"}, {"default_gpu_num": 2}, {"nvidia.com/gpu": "2"}),
        ({"nvidia.com/gpucores": "30"}, {"default_gpu_num": 0}, {}),
        ({"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "100"}, {},
         {"nvidia.com/gpucores": "100"}),
        ({"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"}, {}, {}),
        ({"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}, {"resource_memory_name": ""},
         {"nvidia.com/gpucores": "100"}),
        ({"nvidia.com/gpu": "2", "nvidia.com/gpucores": "20"}, {}, {}),
        ({"example.com/vgpu": "1"},
         {"resource_count_name": "example.com/vgpu", "resource_core_name": "example.com/vc"},
         {"example.com/vc": "100"}),
    ],
)  # fmt: skip
def test_hami_defaults_are_added_as_limits(
    limits: dict[str, str], config: dict[str, Any], added: dict[str, str]
) -> None:
    assert _limits_after(limits, **config) == {**limits, **added}


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4Gi"},
         "container main: nvidia.com/gpumem is 4Gi, i.e. 4294967296 MiB per device; "
         "nvidia.com/gpumem is in MiB: write 4096"),
        ({"nvidia.com/gpumem": "1e30"},
         "container main: nvidia.com/gpumem is 1e30, more than any device has; write the memory "
         "per device in MiB, at most 2147483647"),
        ({"nvidia.com/gpu": "1e30"},
         "container main: nvidia.com/gpu is 1e30; write a whole number of devices, such as 1"),
        ({"nvidia.com/gpu": "1", "nvidia.com/gpucores": "-5"},
         "container main: nvidia.com/gpucores is -5; set it between 0 and 100 (percent of one "
         "device's cores)"),
        ({"nvidia.com/gpu": "1", "nvidia.com/priority": "high"},
         "container main: nvidia.com/priority is high; write a whole number (0: high priority, "
         "1: low)"),
    ],
)  # fmt: skip
def test_values_the_scheduler_would_refuse_are_refused_saying_what_to_write(
    limits: dict[str, str], message: str
) -> None:
    decision = _decide(pod(container(limits=limits)))
    assert (decision.allowed, decision.code, decision.reason) == (False, 400, "invalid-request")
    assert decision.message == message


def test_clamped_cores_are_admitted_with_a_warning() -> None:
    p = pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpucores": "150"}))
    decision = _decide(p)
    assert decision.allowed
    assert decision.warnings == [
        "container main: nvidia.com/gpucores is 150, more than the 100 percent of one device; "
        "it is taken as 100 (the whole device's cores)"
    ]
    assert decision.quota == {"nvidia.com/gpucores": 100}


def test_the_decision_carries_the_request_of_the_admitted_pod() -> None:
    p = pod(container(limits={"nvidia.com/gpumem": "3000"}))
    decision = _decide(p)
    assert decision.request is not None
    [device] = decision.request.containers[0].devices
    assert (device.count, device.mem_mib, device.cores) == (1, 3000, 0)
    assert decision.quota == {"nvidia.com/gpumem": 3000}


def test_trace_context_is_skipped_with_a_warning_when_annotations_would_be_too_long() -> None:
    # the API server's limit: all keys and values together at most 262144 bytes
    room = 256 * 1024 - len("big") - len("hami.io/trace-context") - len(TRACEPARENT)
    fits = pod(container(limits=GPU), annotations={"big": "x" * room})
    after = _after(fits, _decide(fits))
    assert after["metadata"]["annotations"]["hami.io/trace-context"] == TRACEPARENT
    full = pod(container(limits=GPU), annotations={"big": "x" * (room + 1)})
    decision = _decide(full)
    assert decision.allowed
    assert "hami.io/trace-context" not in _after(full, decision)["metadata"]["annotations"]
    assert decision.warnings == [
        "hami-webhook did not add the hami.io/trace-context annotation: the pod's annotations "
        "(262069 bytes) would then exceed the API server's limit of 262144 bytes; the pod's "
        "placement is not traced"
    ]
    # already too long without it: the API server refuses the pod for what the user wrote
    over = pod(container(limits=GPU), annotations={"big": "x" * 256 * 1024})
    assert _decide(over).warnings == []


def test_init_containers_are_mutated_too() -> None:
    p = pod(container(), init=[container("init", limits={"nvidia.com/gpumem": "100"})])
    after = _after(p, _decide(p))
    assert after["spec"]["initContainers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_a_pod_nested_too_deeply_is_refused_not_crashed() -> None:
    p = pod(container())
    deep: Any = "leaf"
    for _ in range(5000):
        deep = {"a": deep}
    p["spec"]["affinity"] = deep
    decision = _decide(p)
    assert (decision.allowed, decision.code) == (False, 400)
    assert decision.message == (
        "the pod cannot be read: object is nested more than 100 levels deep, which no pod is"
    )


def test_malformed_pod_is_refused_naming_the_field() -> None:
    p = pod(container())
    p["spec"]["containers"][0]["resources"] = {"limits": ["nvidia.com/gpu"]}
    decision = _decide(p)
    assert (decision.allowed, decision.code) == (False, 400)
    assert decision.message is not None
    assert "spec.containers[0].resources.limits must map names to quantities" in decision.message


def _quota(limit: int, used: int, name: str = "nvidia.com/gpumem") -> InMemoryQuotaSource:
    return InMemoryQuotaSource({"default": {name: QuotaState(limit=limit, used=used)}})


def test_quota_exceeded_is_refused_with_the_numbers() -> None:
    p = pod(container(limits={"nvidia.com/gpu": "2", "nvidia.com/gpumem": "3000"}))
    decision = _decide(p, quota=_quota(limit=10000, used=5000))
    assert not decision.allowed
    assert decision.message == (
        "namespace default: quota limits.nvidia.com/gpumem exceeded: this pod asks 6000, "
        "5000 of 10000 is already in use; lower nvidia.com/gpumem or raise "
        "limits.nvidia.com/gpumem in the namespace's ResourceQuota"
    )
    assert _decide(p, quota=_quota(limit=11000, used=5000)).allowed


def test_quota_counts_cores_and_the_init_container_peak() -> None:
    p = pod(
        container("a", limits={"nvidia.com/gpu": "1", "nvidia.com/gpucores": "30"}),
        container("b", limits={"nvidia.com/gpu": "1", "nvidia.com/gpucores": "30"}),
        init=[container("i", limits={"nvidia.com/gpu": "1", "nvidia.com/gpucores": "50"})],
    )
    # max(app sum 60, init peak 50) = 60
    assert _decide(p, quota=_quota(100, 40, "nvidia.com/gpucores")).allowed
    assert not _decide(p, quota=_quota(100, 41, "nvidia.com/gpucores")).allowed


def test_bare_gpu_counts_its_defaulted_exclusive_cores() -> None:
    p = pod(container(limits=GPU))
    assert not _decide(p, quota=_quota(99, 0, "nvidia.com/gpucores")).allowed


def test_zero_limit_blocks_and_memory_factor_scales_the_limit() -> None:
    p = pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1"}))
    assert not _decide(p, quota=_quota(0, 0)).allowed
    # factor 256: 4 units ask 1024, the limit 4 means 1024 too
    p4 = pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4"}))
    assert _decide(p4, quota=_quota(4, 0), memory_factor=256).allowed
    assert not _decide(p4, quota=_quota(4, 1), memory_factor=256).allowed


def test_quota_source_failure_fails_open() -> None:
    class Broken:
        async def quota(self, namespace: str, resources: Any) -> dict[str, QuotaState]:
            raise ConnectionFailed("api down")

    decision = _decide(pod(container(limits=GPU)), quota=Broken())
    assert decision.allowed
    assert decision.warnings == [
        "hami-webhook could not read the namespace's device quota, so this pod was "
        "admitted without that check"
    ]


def test_percentage_only_memory_counts_zero_for_quota() -> None:
    p = pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"}))
    assert _decide(p, quota=_quota(0, 0)).allowed


def test_slow_api_fails_open_within_the_timeout() -> None:
    class Slow:
        async def quota(self, namespace: str, resources: Any) -> dict[str, QuotaState]:
            await asyncio.sleep(30)
            return {}

        async def labels(self, namespace: str) -> dict[str, str]:
            await asyncio.sleep(30)
            return {}

    admitter = Admitter(
        _model(),
        AdmissionPolicy("hami-scheduler"),
        quota=Slow(),
        namespaces=Slow(),
        api_timeout=0.05,
    )
    decision = asyncio.run(admitter.decide("default", pod(container(limits=GPU))))
    assert (decision.allowed, decision.reason) == (True, "mutated")
    assert len(decision.warnings) == 1
