"""Ephemeral containers added to a running pod that holds shared devices."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from hami_common.settings import DeviceConfig
from hami_webhook.admission import AdmissionPolicy, Admitter, Decision
from hami_webhook.devices import DeviceModel
from hami_webhook.ephemeral import new_ephemeral_containers
from hami_webhook.namespaces import InMemoryNamespaceSource
from hami_webhook.patch import apply_patch
from hami_webhook.testing import container, pod

GPU = {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"}


def _debug(name: str = "debugger", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", **fields}


def _with(p: dict[str, Any], *ephemeral: dict[str, Any]) -> dict[str, Any]:
    updated = copy.deepcopy(p)
    updated["spec"].setdefault("ephemeralContainers", []).extend(ephemeral)
    return updated


def _decide(old: dict[str, Any], new: dict[str, Any], namespaces: Any = None) -> Decision:
    admitter = Admitter(
        DeviceModel.from_config(DeviceConfig()),
        AdmissionPolicy("hami-scheduler"),
        namespaces=namespaces,
    )
    return asyncio.run(admitter.decide_ephemeral("default", new, old))


def test_privileged_debugger_on_a_gpu_pod_is_refused_saying_why() -> None:
    old = pod(container(limits=GPU))
    decision = _decide(old, _with(old, _debug(securityContext={"privileged": True})))
    assert (decision.allowed, decision.code, decision.reason) == (False, 403, "ephemeral")
    assert decision.message == (
        "ephemeral container debugger is privileged and the pod holds shared devices: a "
        "privileged container sees every device, outside the pod's limits; debug without "
        "securityContext.privileged"
    )


@pytest.mark.parametrize(
    "env",
    [
        [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}],
        [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "GPU-0"}],
        [{"name": "NVIDIA_VISIBLE_DEVICES", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
    ],
)
def test_debugger_asking_the_runtime_for_devices_is_refused(env: list[dict[str, Any]]) -> None:
    old = pod(container(limits=GPU))
    decision = _decide(old, _with(old, _debug(env=env)))
    assert (decision.allowed, decision.code) == (False, 403)
    assert decision.message is not None
    assert "remove NVIDIA_VISIBLE_DEVICES or set it to none" in decision.message


def test_an_allowed_debugger_gets_no_devices_from_its_image_env() -> None:
    old = pod(container(limits=GPU))
    new = _with(old, _debug(env=[{"name": "CUDA_DISABLE_CONTROL", "value": "true"}]))
    decision = _decide(old, new)
    assert (decision.allowed, decision.reason) == (True, "ephemeral-mutated")
    assert decision.patch == [
        {
            "op": "add",
            "path": "/spec/ephemeralContainers/0/env/1",
            "value": {"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"},
        }
    ]
    explicit = _with(old, _debug(env=[{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]))
    assert _decide(old, explicit).patch == []


def test_only_containers_new_in_this_update_are_reviewed_or_changed() -> None:
    # an earlier debugger (added before this webhook ran) is immutable: leave it alone
    old = _with(pod(container(limits=GPU)), _debug("old", securityContext={"privileged": True}))
    new = _with(old, _debug("new"))
    assert [c["name"] for c in new_ephemeral_containers(new, old)] == ["new"]
    decision = _decide(old, new)
    assert decision.allowed
    after = apply_patch(new, decision.patch)
    assert "env" not in after["spec"]["ephemeralContainers"][0]
    assert after["spec"]["ephemeralContainers"][1]["env"] == [
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"}
    ]


def test_pods_without_shared_devices_or_opted_out_are_left_alone() -> None:
    privileged = _debug(securityContext={"privileged": True})
    plain = pod(container())
    assert _decide(plain, _with(plain, privileged)) == Decision(True, "ephemeral-allowed")
    labelled = pod(container(limits=GPU), labels={"hami.io/webhook": "ignore"})
    assert _decide(labelled, _with(labelled, privileged)).allowed
    gpu = pod(container(limits=GPU))
    namespaces = InMemoryNamespaceSource({"default": {"hami.io/webhook": "ignore"}})
    assert _decide(gpu, _with(gpu, privileged), namespaces).allowed


def test_a_pod_whose_devices_cannot_be_read_counts_as_holding_some() -> None:
    old = pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4Gi"}))
    decision = _decide(old, _with(old, _debug(securityContext={"privileged": True})))
    assert not decision.allowed


def test_a_malformed_ephemeral_container_is_refused_naming_the_field() -> None:
    old = pod(container(limits=GPU))
    decision = _decide(old, _with(old, {"name": "x", "env": "A=1"}))
    assert (decision.allowed, decision.code) == (False, 400)
    assert decision.message == (
        "the pod cannot be read: spec.ephemeralContainers[0].env must be a list of objects"
    )
