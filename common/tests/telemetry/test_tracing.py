"""setup_tracing: the exporter chosen from OTEL_* variables, resource attributes, in-memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from hami_common.telemetry import TelemetryConfigError, in_memory_tracing, setup_tracing
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter


def _exporters(provider: TracerProvider) -> list[object]:
    processors = provider._active_span_processor._span_processors
    return [p.span_exporter for p in processors if isinstance(p, BatchSpanProcessor)]


def _setup(env: dict[str, str]) -> list[object]:
    provider = setup_tracing("svc", env)
    try:
        return _exporters(provider)
    finally:
        provider.shutdown()


def test_no_endpoint_means_no_exporter_but_real_span_ids() -> None:
    provider = setup_tracing("svc", {})
    assert _exporters(provider) == []
    with provider.get_tracer("t").start_as_current_span("s") as span:
        assert span.get_span_context().is_valid
    provider.shutdown()


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str | None, int]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers.get("x-tenant"), len(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_spans_reach_an_otlp_collector_at_the_traces_path_with_headers(collector: str) -> None:
    provider = setup_tracing(
        "svc",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector + "/",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=a%20b",
        },
    )
    with provider.get_tracer("t").start_as_current_span("admission"):
        pass
    assert provider.force_flush(10_000)
    provider.shutdown()
    assert [(path, tenant) for path, tenant, _ in _Collector.received] == [("/v1/traces", "a b")]
    assert _Collector.received[0][2] > 0


def test_traces_endpoint_is_used_as_is(collector: str) -> None:
    provider = setup_tracing(
        "svc",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/ignored",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector + "/custom",
        },
    )
    with provider.get_tracer("t").start_as_current_span("admission"):
        pass
    assert provider.force_flush(10_000)
    provider.shutdown()
    assert [path for path, _, _ in _Collector.received] == ["/custom"]


def test_an_otlp_endpoint_installs_one_otlp_exporter() -> None:
    (exporter,) = _setup({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert isinstance(exporter, OTLPSpanExporter)


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
    ],
)
def test_disabled_or_none_means_no_exporter(env: dict[str, str]) -> None:
    assert _setup(env) == []


def test_console_exporter() -> None:
    (exporter,) = _setup({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(exporter, ConsoleSpanExporter)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        ({"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "OTEL_RESOURCE_ATTRIBUTES"),
    ],
)
def test_unsupported_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(TelemetryConfigError, match=variable):
        setup_tracing("svc", env)


def test_service_name_and_resource_attributes() -> None:
    provider = setup_tracing(
        "svc",
        {"OTEL_SERVICE_NAME": "renamed", "OTEL_RESOURCE_ATTRIBUTES": "k8s.pod.name=p1,team=ml"},
    )
    assert provider.resource.attributes["service.name"] == "renamed"
    assert provider.resource.attributes["k8s.pod.name"] == "p1"
    assert provider.resource.attributes["team"] == "ml"
    provider.shutdown()


def test_in_memory_tracing_sees_finished_spans_at_once() -> None:
    provider, exporter = in_memory_tracing("svc")
    with provider.get_tracer("t").start_as_current_span("admission"):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["admission"]
    assert exporter.get_finished_spans()[0].resource.attributes["service.name"] == "svc"
    provider.shutdown()
