"""The DRA path (``--dra``): HAMi-style NVIDIA requests become a claim from a shared template,
kube-scheduler is left to place the pod, and what cannot be converted is refused with what to
change."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hami_common.k8s import ConnectionFailed
from hami_common.settings import DeviceConfig
from hami_webhook.admission import AdmissionPolicy, Admitter, Decision
from hami_webhook.devices import DeviceModel
from hami_webhook.dra import DraConversion, InMemoryTemplateSink
from hami_webhook.patch import apply_patch
from hami_webhook.testing import container, pod

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _decide(p: Any, sink: Any, *, dra: bool = True) -> Decision:
    admitter = Admitter(
        DeviceModel.from_config(DeviceConfig()),
        AdmissionPolicy("hami-scheduler", True),
        dra=DraConversion() if dra else None,
        templates=sink,
    )
    return asyncio.run(admitter.decide("ns1", p, TRACEPARENT))


def test_a_share_becomes_a_claim_of_a_shared_template() -> None:
    sink = InMemoryTemplateSink()
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000", "nvidia.com/gpucores": "30"}
    p = pod(container("main", limits=limits, requests={"cpu": "1"}), container("side"))
    decision = _decide(p, sink)
    assert (decision.allowed, decision.reason) == (True, "dra-converted")
    after = apply_patch(p, decision.patch)
    spec = after["spec"]
    assert "schedulerName" not in spec  # kube-scheduler's own DRA allocation places it
    assert spec["resourceClaims"] == [
        {"name": "hami-gpu-0", "resourceClaimTemplateName": "hami-gpu-1x-3000mi-30c"}
    ]
    main, side = spec["containers"]
    assert main["resources"] == {"requests": {"cpu": "1"}, "claims": [{"name": "hami-gpu-0"}]}
    assert "claims" not in (side.get("resources") or {})
    assert after["metadata"]["annotations"]["hami.io/trace-context"] == TRACEPARENT
    template = sink.templates[("ns1", "hami-gpu-1x-3000mi-30c")]
    assert template["spec"]["spec"]["devices"]["requests"] == [
        {"name": "gpu", "exactly": {"deviceClassName": "gpu.hami.io", "count": 1,
                                    "capacity": {"requests": {"memory": "3000Mi", "cores": "30"}}}}
    ]  # fmt: skip
    # a second pod of the same shape reuses the template
    _decide(pod(container("x", limits=limits)), sink)
    assert len(sink.templates) == 1


def test_a_whole_gpu_asks_no_memory_and_two_gpus_stay_apart() -> None:
    sink = InMemoryTemplateSink()
    two_gpus = {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "1000"}
    p = pod(container("a", limits={"nvidia.com/gpu": "1"}), container("b", limits=two_gpus))
    after = apply_patch(p, _decide(p, sink).patch)
    assert [c["resourceClaimTemplateName"] for c in after["spec"]["resourceClaims"]] == [
        "hami-gpu-1x-whole-100c", "hami-gpu-2x-1000mi-0c"
    ]  # fmt: skip
    whole = sink.templates[("ns1", "hami-gpu-1x-whole-100c")]["spec"]["spec"]["devices"]
    assert whole["requests"][0]["exactly"]["capacity"] == {"requests": {"cores": "100"}}
    two = sink.templates[("ns1", "hami-gpu-2x-1000mi-0c")]["spec"]["spec"]["devices"]
    assert two["requests"][0]["exactly"]["count"] == 2
    assert two["constraints"] == [{"requests": ["gpu"], "distinctAttribute": "gpu.hami.io/uuid"}]


def test_a_memory_percentage_is_refused_with_what_to_change() -> None:
    p = pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"}))
    decision = _decide(p, InMemoryTemplateSink())
    assert (decision.allowed, decision.reason, decision.code) == (False, "dra-unconvertible", 400)
    assert decision.message is not None
    assert "use nvidia.com/gpumem in MiB" in decision.message


def test_a_template_that_cannot_be_created_refuses_the_pod() -> None:
    class Failing:
        async def ensure(self, namespace: str, template: dict[str, Any]) -> None:
            raise ConnectionFailed("connection refused")

    decision = _decide(pod(container(limits={"nvidia.com/gpu": "1"})), Failing())
    assert (decision.allowed, decision.reason, decision.code) == (False, "dra-template", 500)
    assert decision.message is not None
    assert "create resourceclaimtemplates" in decision.message


@pytest.mark.parametrize("dra", [False, True])
def test_off_by_default_the_device_plugin_path_is_taken(dra: bool) -> None:
    p = pod(container(limits={"nvidia.com/gpu": "1"}))
    decision = _decide(p, InMemoryTemplateSink(), dra=dra)
    after = apply_patch(p, decision.patch)
    assert ("schedulerName" in after["spec"]) is not dra
    assert ("resourceClaims" in after["spec"]) is dra


def test_a_dry_run_creates_no_template() -> None:
    sink = InMemoryTemplateSink()
    admitter = Admitter(DeviceModel.from_config(DeviceConfig()),
                        AdmissionPolicy("hami-scheduler", True), dra=DraConversion(),
                        templates=sink)  # fmt: skip
    p = pod(container(limits={"nvidia.com/gpu": "1"}))
    decision = asyncio.run(admitter.decide("ns1", p, None, dry_run=True))
    assert decision.reason == "dra-converted"
    assert sink.templates == {}
