"""The webhook's ASGI app: ``POST /webhook``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.

`create_app(settings)` builds everything from the settings; tests inject the device model, the
quota and namespace sources, the tracer provider and the Prometheus registry. A check that the
settings disable (``--no-quota-check``, ``--no-namespace-check``) is off even when its source is
injected. When an enabled check has no injected source, the lifespan opens a Kubernetes client
(``--kubeconfig``, ``KUBECONFIG`` or in-cluster) and closes it on shutdown.

Tracing: each admission is a span named ``admission``. Its parent is the trace context already
on the pod (``hami.io/trace-context``), else the request's ``traceparent`` header (API server
tracing), else none; the span's own context is then written onto device pods so that filter,
bind and Allocate join the same trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from hami_common.k8s import ConfigError, KubeClient, load_config
from hami_common.telemetry import (
    TRACEPARENT_HEADER,
    context_from_pod,
    context_from_traceparent,
    format_traceparent,
    metrics_route,
    new_registry,
    setup_tracing,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hami_webhook.admission import AdmissionPolicy, Admitter, Decision
from hami_webhook.devices import DeviceModel
from hami_webhook.dra import DraConversion, KubeTemplateSink, TemplateSink
from hami_webhook.namespaces import KubeNamespaceSource, NamespaceSource
from hami_webhook.quota import KubeQuotaSource, QuotaSource
from hami_webhook.review import AdmissionRequest, ReviewError, parse_review, review_response
from hami_webhook.settings import WebhookSettings

log = logging.getLogger(__name__)

SERVICE_NAME = "hami-webhook"


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.admissions = Counter(
            "hami_webhook_admissions",
            "Admission decisions by outcome (allowed, refused, error) and reason",
            ["outcome", "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "hami_webhook_admission_duration_seconds",
            "Time to decide on one AdmissionReview",
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )


async def _read_body(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _pod_label(pod: Any) -> str:
    metadata = pod.get("metadata") if isinstance(pod, dict) else None
    if not isinstance(metadata, dict):
        return ""
    name = metadata.get("name") or metadata.get("generateName") or ""
    return name if isinstance(name, str) else ""


def create_app(
    settings: WebhookSettings,
    *,
    model: DeviceModel | None = None,
    quota: QuotaSource | None = None,
    namespaces: NamespaceSource | None = None,
    templates: TemplateSink | None = None,
    tracer_provider: TracerProvider | None = None,
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """Build the app. Raises `SettingsError` when the device config file is invalid."""
    devices = (
        model
        if model is not None
        else DeviceModel.from_config(settings.device_config(), enable_ascend=settings.enable_ascend)
    )
    registry = registry if registry is not None else new_registry()
    metrics = _Metrics(registry)
    provider = tracer_provider
    policy = AdmissionPolicy(settings.scheduler_name, settings.force_overwrite_default_scheduler)
    admitter = Admitter(
        devices,
        policy,
        quota=quota if settings.quota_check else None,
        namespaces=namespaces if settings.namespace_check else None,
        api_timeout=settings.api_timeout_seconds,
        dra=DraConversion(settings.dra_device_class, settings.dra_driver_name)
        if settings.dra
        else None,
        templates=templates,
    )
    state: dict[str, Any] = {"ready": False}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal provider
        async with AsyncExitStack() as stack:
            if provider is None:
                provider = setup_tracing(SERVICE_NAME)
                stack.callback(provider.shutdown)
            needs_quota = settings.quota_check and admitter.quota is None
            needs_namespaces = settings.namespace_check and admitter.namespaces is None
            needs_templates = settings.dra and admitter.templates is None
            if needs_quota or needs_namespaces or needs_templates:
                try:
                    config = load_config(settings.kubeconfig)
                except ConfigError as exc:
                    raise ConfigError(
                        f"{exc}; set --kubeconfig, or run without the API with "
                        "--no-quota-check --no-namespace-check"
                    ) from None
                client = KubeClient(config, user_agent=SERVICE_NAME)
                stack.push_async_callback(client.aclose)
                if needs_quota:
                    admitter.quota = KubeQuotaSource(client, devices)
                if needs_namespaces:
                    admitter.namespaces = KubeNamespaceSource(client)
                if needs_templates:
                    admitter.templates = KubeTemplateSink(client)
            state["ready"] = True
            try:
                yield
            finally:
                state["ready"] = False

    async def webhook(request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = await _read_body(request, settings.max_request_bytes)
        except ClientDisconnect:
            return Response(status_code=400)
        if body is None:
            metrics.admissions.labels("error", "too-large").inc()
            return JSONResponse(
                {"error": f"body exceeds {settings.max_request_bytes} bytes; "
                 "raise --max-request-bytes if such pods are expected"},
                status_code=413,
            )  # fmt: skip
        try:
            review = parse_review(body)
        except ReviewError as exc:
            metrics.admissions.labels("error", "bad-review").inc()
            return JSONResponse({"error": str(exc)}, status_code=400)
        answer = await _admit(review, request.headers.get(TRACEPARENT_HEADER))
        metrics.latency.observe(time.perf_counter() - started)
        return JSONResponse(answer)

    async def _admit(review: AdmissionRequest, header_traceparent: str | None) -> dict[str, Any]:
        ephemeral = (review.operation, review.sub_resource) == ("UPDATE", "ephemeralcontainers")
        creates = (review.operation, review.sub_resource) == ("CREATE", "")
        if review.kind != "Pod" or not (creates or ephemeral):
            metrics.admissions.labels("allowed", "not-pod-create").inc()
            return review_response(review, allowed=True)
        assert provider is not None  # set by the lifespan  # noqa: S101
        tracer = provider.get_tracer("hami_webhook")
        parent = context_from_pod(review.obj) or context_from_traceparent(header_traceparent)
        with tracer.start_as_current_span(
            "admission",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "k8s.namespace.name": review.namespace,
                "k8s.pod.name": _pod_label(review.obj),
                "hami.admission.uid": review.uid,
                "hami.admission.dry_run": review.dry_run,
            },
        ) as span:
            try:
                if ephemeral:
                    decision = await admitter.decide_ephemeral(
                        review.namespace, review.obj, review.old_obj
                    )
                else:
                    decision = await admitter.decide(
                        review.namespace, review.obj, format_traceparent(span.get_span_context()),
                        dry_run=review.dry_run,
                    )  # fmt: skip
            except Exception as exc:  # a bug: answer, never drop the connection
                log.exception("admission %s failed", review.uid)
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, type(exc).__name__)
                metrics.admissions.labels("error", "internal").inc()
                return review_response(
                    review, allowed=False, code=500, reason="InternalError",
                    message=f"hami-webhook failed on this pod ({type(exc).__name__}); "
                    "see the webhook's log and report it",
                )  # fmt: skip
            span.set_attribute("hami.admission.allowed", decision.allowed)
            span.set_attribute("hami.admission.reason", decision.reason)
            span.set_attribute("hami.admission.has_devices", decision.has_resource)
        return _answer(review, decision)

    def _answer(review: AdmissionRequest, decision: Decision) -> dict[str, Any]:
        outcome = "allowed" if decision.allowed else "refused"
        metrics.admissions.labels(outcome, decision.reason).inc()
        if not decision.allowed:
            log.info(
                "refused %s/%s: %s", review.namespace, _pod_label(review.obj), decision.message
            )
            return review_response(
                review, allowed=False, code=decision.code, message=decision.message,
                reason="BadRequest" if decision.code == 400 else "Forbidden",
            )  # fmt: skip
        return review_response(
            review, allowed=True, patch=decision.patch, warnings=decision.warnings
        )

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        ready = state["ready"]
        return PlainTextResponse("ok" if ready else "starting", status_code=200 if ready else 503)

    return Starlette(
        routes=[
            Route("/webhook", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            metrics_route(registry),
        ],
        lifespan=lifespan,
    )
