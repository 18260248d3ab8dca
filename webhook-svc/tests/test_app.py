"""The ASGI app: AdmissionReview in, AdmissionReview out; spans, metrics, health, HTTP errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from hami_common.k8s import ConfigError
from hami_common.settings import SettingsError
from hami_common.telemetry import TRACE_CONTEXT_ANNOTATION, in_memory_tracing, new_registry
from hami_rustcore import RequestModel
from hami_webhook.app import create_app
from hami_webhook.devices import DeviceModel
from hami_webhook.namespaces import InMemoryNamespaceSource
from hami_webhook.quota import InMemoryQuotaSource, QuotaState
from hami_webhook.settings import WebhookSettings
from hami_webhook.testing import container, decoded_patch, pod, review
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

GPU = {"nvidia.com/gpu": "1"}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Harness:
    def __init__(self, *argv: str, quota: Any = None) -> None:
        settings = WebhookSettings.load(list(argv))
        self.provider, self.spans = in_memory_tracing("hami-webhook")
        self.registry = new_registry()
        self.app = create_app(
            settings,
            tracer_provider=self.provider,
            registry=self.registry,
            quota=quota or InMemoryQuotaSource(),
            namespaces=InMemoryNamespaceSource({"skipped": {"hami.io/webhook": "ignore"}}),
        )

    def calls(self, *requests: tuple[str, str, Any, dict[str, str] | None]) -> list[httpx.Response]:
        return asyncio.run(_calls(self.app, requests))

    def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.calls(("POST", "/webhook", body, headers))[0]


async def _calls(
    app: Starlette, requests: Sequence[tuple[str, str, Any, dict[str, str] | None]]
) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    responses = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="https://webhook") as client,
    ):
        for method, path, body, headers in requests:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            responses.append(
                await client.request(method, path, content=content, headers=headers or {})
            )
    return responses


def _metric(registry: CollectorRegistry, outcome: str, reason: str) -> float:
    value = registry.get_sample_value(
        "hami_webhook_admissions_total", {"outcome": outcome, "reason": reason}
    )
    return value or 0.0


def test_device_pod_is_mutated_with_a_json_patch() -> None:
    h = Harness()
    response = h.post(review(pod(container(limits=GPU))))
    assert response.status_code == 200
    answer = response.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert answer["response"]["allowed"] is True
    assert answer["response"]["patchType"] == "JSONPatch"
    ops = {op["path"]: op for op in decoded_patch(answer)}
    assert ops["/spec/schedulerName"]["value"] == "hami-scheduler"
    assert ops["/spec/containers/0/resources/limits/nvidia.com~1gpucores"]["value"] == "100"
    assert _metric(h.registry, "allowed", "mutated") == 1


def test_v1beta1_is_answered_in_v1beta1() -> None:
    answer = Harness().post(
        review(pod(container(limits=GPU)), api_version="admission.k8s.io/v1beta1")
    )
    assert answer.json()["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer.json()["response"]["allowed"] is True


def test_admission_span_is_written_onto_the_pod_and_later_steps_can_join() -> None:
    h = Harness()
    answer = h.post(review(pod(container(limits=GPU)))).json()
    (span,) = h.spans.get_finished_spans()
    assert span.name == "admission"
    assert span.attributes is not None
    assert span.attributes["hami.admission.reason"] == "mutated"
    assert span.attributes["k8s.pod.name"] == "p"
    ops = {op["path"]: op["value"] for op in decoded_patch(answer)}
    written = ops["/metadata/annotations"][TRACE_CONTEXT_ANNOTATION]
    ctx = span.context
    assert written == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def test_the_span_joins_a_trace_already_on_the_pod_else_the_request_header() -> None:
    h = Harness()
    on_pod = pod(container(limits=GPU), annotations={TRACE_CONTEXT_ANNOTATION: TRACEPARENT})
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    h.post(review(on_pod), headers={"traceparent": other})
    h.post(review(pod(container(limits=GPU))), headers={"traceparent": other})
    first, second = h.spans.get_finished_spans()
    assert first.parent is not None
    assert second.parent is not None
    assert (first.context.trace_id, first.parent.span_id) == (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
    )
    assert second.context.trace_id == 0x11111111111111111111111111111111


def test_refusal_is_an_admission_review_with_status_and_message() -> None:
    h = Harness()
    answer = h.post(review(pod(container(limits=GPU), nodeName="n1"))).json()["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    assert answer["status"]["reason"] == "Forbidden"
    assert "use spec.nodeSelector" in answer["status"]["message"]
    assert "patch" not in answer
    assert _metric(h.registry, "refused", "node-name") == 1


def test_quota_refusal_reaches_the_user_with_numbers() -> None:
    quota = InMemoryQuotaSource({"default": {"nvidia.com/gpumem": QuotaState(1000, 900)}})
    h = Harness(quota=quota)
    p = pod(container(limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "200"}))
    answer = h.post(review(p)).json()["response"]
    assert "this pod asks 200, 900 of 1000 is already in use" in answer["status"]["message"]


def test_disabled_checks_ignore_injected_sources() -> None:
    quota = InMemoryQuotaSource({"default": {"nvidia.com/gpucores": QuotaState(0, 0)}})
    assert (
        not Harness(quota=quota)
        .post(review(pod(container(limits=GPU))))
        .json()["response"]["allowed"]
    )
    h = Harness("--no-quota-check", "--no-namespace-check", quota=quota)
    answer = h.post(review(pod(container(limits=GPU), namespace="skipped"))).json()["response"]
    assert answer["allowed"] is True
    assert "patch" in answer


def test_ignored_namespace_and_non_create_are_allowed_untouched() -> None:
    h = Harness()
    ignored = h.post(review(pod(container(limits=GPU), namespace="skipped"))).json()["response"]
    update = h.post(review(pod(container(limits=GPU)), operation="UPDATE")).json()["response"]
    not_pod = h.post(review({"kind": "Service"}, kind="Service")).json()["response"]
    for answer in (ignored, update, not_pod):
        assert answer["allowed"] is True
        assert "patch" not in answer


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not JSON"),
        ([1, 2], "must be a JSON object"),
        ({"apiVersion": "v1", "kind": "AdmissionReview"}, "apiVersion 'v1' is not supported"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}, "use AdmissionReview"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request is missing"),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}},
            "request.uid is missing",
        ),
    ],
)
def test_garbage_gets_a_400_that_says_what_is_wrong(body: Any, message: str) -> None:
    h = Harness()
    response = h.post(body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert _metric(h.registry, "error", "bad-review") == 1


def test_metadata_not_an_object_and_no_namespace_is_answered_in_the_review() -> None:
    body = review({"metadata": ["x"], "spec": {"containers": []}})
    del body["request"]["namespace"]
    response = Harness().post(body)
    assert response.status_code == 200
    answer = response.json()["response"]
    assert (answer["allowed"], answer["status"]["code"]) == (False, 400)
    assert answer["status"]["message"] == "the pod cannot be read: metadata must be an object"


def test_warnings_reach_the_user_in_the_review() -> None:
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "150"}
    answer = Harness().post(review(pod(container(limits=limits)))).json()["response"]
    assert answer["allowed"] is True
    assert answer["warnings"] == [
        "container main: nvidia.com/gpucores is 150, more than the 100 percent of one device; "
        "it is taken as 100 (the whole device's cores)"
    ]


def test_ephemeral_containers_are_reviewed_and_other_subresources_are_not() -> None:
    old = pod(container(limits=GPU))
    new = pod(container(limits=GPU))
    new["spec"]["ephemeralContainers"] = [
        {"name": "dbg", "image": "busybox", "securityContext": {"privileged": True}}
    ]
    h = Harness()
    refused, status = (
        h.post(review(new, operation=op, sub_resource=sub, old=old)).json()["response"]
        for op, sub in (("UPDATE", "ephemeralcontainers"), ("UPDATE", "status"))
    )
    assert (refused["allowed"], refused["status"]["code"]) == (False, 403)
    assert refused["status"]["message"].startswith("ephemeral container dbg is privileged")
    assert status == {"uid": status["uid"], "allowed": True}
    assert _metric(h.registry, "refused", "ephemeral") == 1


def test_a_malformed_pod_is_refused_in_the_body() -> None:
    response = Harness().post(review({"metadata": {}, "spec": {"containers": "x"}}))
    assert response.status_code == 200
    answer = response.json()["response"]
    assert (answer["allowed"], answer["status"]["code"]) == (False, 400)
    assert answer["status"]["message"] == "the pod cannot be read: spec.containers must be a list"


def test_oversized_body_is_413() -> None:
    big = review(pod(container(env=[{"name": "X", "value": "y" * 4096}])))
    response = Harness("--max-request-bytes", "2048").post(big)
    assert response.status_code == 413
    assert "raise --max-request-bytes" in response.json()["error"]


def test_health_readiness_and_metrics_routes() -> None:
    h = Harness()
    health, ready, _, metrics, wrong = h.calls(
        ("GET", "/healthz", b"", None),
        ("GET", "/readyz", b"", None),
        ("POST", "/webhook", review(pod(container())), None),
        ("GET", "/metrics", b"", None),
        ("GET", "/webhook", b"", None),
    )
    assert (health.status_code, ready.status_code, ready.text) == (200, 200, "ok")
    assert (
        'hami_webhook_admissions_total{outcome="allowed",reason="no-devices"} 1.0' in metrics.text
    )
    assert "hami_webhook_admission_duration_seconds_count 1.0" in metrics.text
    assert wrong.status_code == 405


def test_an_internal_bug_is_answered_not_dropped() -> None:
    class Exploding:
        vendor = "X"

        def mutate_container(self, container: Any, pod: Any, admitted: Any) -> None:
            raise ZeroDivisionError

    h = Harness()
    settings = WebhookSettings.load(["--no-quota-check", "--no-namespace-check"])
    model = DeviceModel(RequestModel(), (Exploding(),))
    app = create_app(settings, model=model, tracer_provider=h.provider)
    h.app = app
    spans: InMemorySpanExporter = h.spans
    answer = h.post(review(pod(container()))).json()["response"]
    assert (answer["allowed"], answer["status"]["code"]) == (False, 500)
    assert "ZeroDivisionError" in answer["status"]["message"]
    assert spans.get_finished_spans()[-1].status.is_ok is False


def test_invalid_device_config_fails_at_creation_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "device-config.yaml"
    path.write_text("nvidia:\n  deviceSplitCount: 0\n")
    settings = WebhookSettings.load(["--device-config-file", str(path)])
    with pytest.raises(SettingsError, match=r"nvidia\.deviceSplitCount"):
        create_app(settings)


def test_missing_kubeconfig_fails_start_up_saying_how_to_run_without_the_api(
    tmp_path: Path,
) -> None:
    settings = WebhookSettings.load(["--kubeconfig", str(tmp_path / "none.yaml")])
    app = create_app(settings, tracer_provider=in_memory_tracing("t")[0])

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(ConfigError, match="--no-quota-check --no-namespace-check"):
        asyncio.run(start())
