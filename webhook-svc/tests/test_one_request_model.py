"""One model of what a pod requests: over generated pods, what the webhook admits is what the
extender's core then fits, and what the core would refuse is refused at admission.

The extender derives requests with ``hami_rustcore.Cluster(vendors=...).pod_request``; the table
comes from ``hami_common.settings.core_vendor_table`` for both services.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hami_common.settings import DeviceConfig, NvidiaConfig, core_vendor_table
from hami_rustcore import Cluster, CoreError
from hami_webhook.admission import AdmissionPolicy, Admitter
from hami_webhook.devices import DeviceModel
from hami_webhook.patch import apply_patch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NVIDIA = [
    "nvidia.com/gpu",
    "nvidia.com/gpumem",
    "nvidia.com/gpumem-percentage",
    "nvidia.com/gpucores",
    "nvidia.com/priority",
]
MLU = ["cambricon.com/vmlu", "cambricon.com/mlu.smlu.vmemory", "cambricon.com/mlu.smlu.vcore"]
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

quantities = st.one_of(
    st.sampled_from(
        ["0", "1", "2", "8", "30", "100", "101", "150", "3000", "-1", "1.5", "500m", "1k", "4Ki",
         "1Gi", "4Gi", "4096Mi", "3e9", "1e30", "9Ei", "x", ""]
    ),
    st.integers(-3, 300),
)  # fmt: skip
resources = st.dictionaries(st.sampled_from(NVIDIA + MLU + ["cpu"]), quantities, max_size=4)


@st.composite
def containers(draw: st.DrawFn, prefix: str) -> list[dict[str, Any]]:
    found = []
    for i in range(draw(st.integers(0 if prefix == "init" else 1, 3))):
        c: dict[str, Any] = {"name": f"{prefix}{i}", "image": "busybox"}
        parts = {k: draw(resources) for k in draw(st.sets(st.sampled_from(["limits", "requests"])))}
        if parts:
            c["resources"] = parts
        found.append(c)
    return found


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": draw(containers("c"))}
    init = draw(containers("init"))
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}


configs = st.builds(
    NvidiaConfig,
    default_gpu_num=st.integers(0, 2),
    default_memory=st.sampled_from([0, 1024]),
    default_cores=st.sampled_from([0, 20]),
    memory_factor=st.sampled_from([0, 1, 4]),
    resource_memory_name=st.sampled_from(["nvidia.com/gpumem", ""]),
    runtime_class_name=st.sampled_from(["", "nvidia"]),
    overwrite_env=st.booleans(),
)


def _decide(model: DeviceModel, pod: dict[str, Any]) -> Any:
    admitter = Admitter(model, AdmissionPolicy("hami-scheduler"))
    return asyncio.run(admitter.decide("default", pod, TRACEPARENT))


@PROPERTY
@given(pods(), configs)
def test_what_the_webhook_admits_is_what_the_core_fits(pod: dict[str, Any], nv: Any) -> None:
    config = DeviceConfig(nvidia=nv)
    model = DeviceModel.from_config(config)
    cluster = Cluster(vendors=core_vendor_table(config))  # the extender's derivation
    decision = _decide(model, pod)
    try:
        cluster.pod_request(json.dumps(pod))
    except CoreError:
        core_refuses = True
    else:
        core_refuses = False
    if not decision.allowed:
        assert decision.reason == "invalid-request", decision.message
        assert decision.code == 400
        assert decision.message
        return
    if _api_valid(pod):  # else the API server refuses it before any webhook sees it; the
        # webhook's defaults may even mend it (a count added to limits outranks a bad request)
        assert not core_refuses, "the webhook admitted a pod the core refuses"
    patched = apply_patch(pod, decision.patch)
    text = json.dumps(patched)
    fitted = cluster.pod_request(text)
    assert decision.request is not None
    assert fitted.containers == decision.request.containers
    # the request was derived before the trace annotation was added; nothing else differs
    annotations = fitted.annotations
    annotations.pop("hami.io/trace-context", None)
    assert annotations == decision.request.annotations
    assert model.requests.quota_request(text) == decision.quota
    if _api_valid(pod):
        # a second pass (reinvocation) finds nothing left to change
        assert _decide(model, patched).patch == []


def _api_valid(pod: dict[str, Any]) -> bool:
    """The API server's rule for extended resources: a request only with an equal limit."""
    for kind in ("initContainers", "containers"):
        for c in pod["spec"].get(kind, []):
            parts = c.get("resources", {})
            limits, requests = parts.get("limits", {}), parts.get("requests", {})
            if any(name != "cpu" and limits.get(name) != v for name, v in requests.items()):
                return False
    return True


@pytest.mark.parametrize(
    "limits",
    [
        {"nvidia.com/gpumem": "4Gi"},  # no count: admission adds one, then the fit reads 4Gi
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "-1"},
    ],
)
def test_admission_refuses_what_only_becomes_wrong_or_is_read_leniently_later(
    limits: dict[str, str],
) -> None:
    # the core reads the pod as written without error, but not as the user meant it: the first
    # fails once the default count is added, the second is read as "unset" by the fit
    pod = {"spec": {"containers": [{"name": "c", "resources": {"limits": limits}}]}}
    Cluster().pod_request(json.dumps(pod))
    decision = _decide(DeviceModel.from_config(DeviceConfig()), pod)
    assert (decision.allowed, decision.code) == (False, 400)
