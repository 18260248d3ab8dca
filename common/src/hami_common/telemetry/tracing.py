"""OpenTelemetry tracing set up from the standard ``OTEL_*`` variables.

`setup_tracing` always returns an SDK `TracerProvider`, so spans have real trace and span ids
(needed to write a trace context onto pods) even when nothing is exported. Export:

- ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``: no exporter.
- ``OTEL_TRACES_EXPORTER=console``: spans printed to stdout (debugging).
- ``OTEL_TRACES_EXPORTER=otlp`` (the default): OTLP over HTTP/protobuf, **only** when
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as-is) or ``OTEL_EXPORTER_OTLP_ENDPOINT``
  (``/v1/traces`` appended) is set; otherwise no exporter, so a service without a collector
  does not retry forever.
  ``OTEL_EXPORTER_OTLP[_TRACES]_HEADERS`` are passed on; timeout, compression and certificates are
  read by the exporter itself. ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` must be ``http/protobuf``.
- ``OTEL_SERVICE_NAME`` overrides the service name; ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k=v``) adds
  resource attributes; ``OTEL_TRACES_SAMPLER`` is honoured by the SDK.

Tests pass ``exporter=InMemorySpanExporter()`` (see `in_memory_tracing`), which is exported
synchronously so that finished spans are visible at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import unquote

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class TelemetryConfigError(ValueError):
    """An ``OTEL_*`` variable has a value we cannot honour; the message names it."""


def _pairs(value: str, variable: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise TelemetryConfigError(f"{variable}: {item!r} is not key=value; use k1=v1,k2=v2")
        pairs[unquote(key.strip())] = unquote(val.strip())
    return pairs


def _resource(service_name: str, environ: Mapping[str, str]) -> Resource:
    attributes: dict[str, str] = _pairs(
        environ.get("OTEL_RESOURCE_ATTRIBUTES", ""), "OTEL_RESOURCE_ATTRIBUTES"
    )
    attributes["service.name"] = environ.get("OTEL_SERVICE_NAME") or service_name
    return Resource(attributes)


def _exporter_from_env(environ: Mapping[str, str]) -> SpanExporter | None:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    kind = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleSpanExporter()
    if kind != "otlp":
        raise TelemetryConfigError(
            f"OTEL_TRACES_EXPORTER={kind!r} is not supported; use otlp, console or none"
        )
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(variable)
        if protocol is not None and protocol.strip() != "http/protobuf":
            raise TelemetryConfigError(
                f"{variable}={protocol!r} is not supported; use http/protobuf"
            )
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not endpoint and environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        endpoint = environ["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    if not endpoint:
        return None
    headers_var = (
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
        if "OTEL_EXPORTER_OTLP_TRACES_HEADERS" in environ
        else "OTEL_EXPORTER_OTLP_HEADERS"
    )
    headers = _pairs(environ.get(headers_var, ""), headers_var)
    return OTLPSpanExporter(endpoint=endpoint, headers=headers or None)


def setup_tracing(
    service_name: str,
    environ: Mapping[str, str] | None = None,
    *,
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """A tracer provider for one service. `environ` defaults to ``os.environ``.

    An explicit `exporter` (tests) replaces the one the environment would choose and is
    exported synchronously. The caller owns the provider: call ``shutdown()`` on exit, which
    flushes pending spans. The global provider is left alone.
    """
    env = os.environ if environ is None else environ
    provider = TracerProvider(resource=_resource(service_name, env))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        chosen = _exporter_from_env(env)
        if chosen is not None:
            provider.add_span_processor(BatchSpanProcessor(chosen))
    return provider


def in_memory_tracing(service_name: str) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A provider whose finished spans land in the returned exporter (for tests)."""
    exporter = InMemorySpanExporter()
    return setup_tracing(service_name, {}, exporter=exporter), exporter
