"""The W3C trace context stored on a pod, so every placement step joins one trace.

The annotation ``hami.io/trace-context`` holds exactly one W3C ``traceparent`` value, e.g.
``00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01``. The webhook writes it at admission
(the span id is the admission span's), and the extender, bind and the device plugin read it to
parent their spans. Any other value is ignored (a new trace starts), never an error: the
annotation is user-writable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACE_CONTEXT_ANNOTATION = "hami.io/trace-context"
TRACEPARENT_HEADER = "traceparent"

_PROPAGATOR = TraceContextTextMapPropagator()


def format_traceparent(span_context: SpanContext) -> str:
    """The W3C ``traceparent`` of a span context (version 00)."""
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
        f"-{int(span_context.trace_flags):02x}"
    )


def context_from_traceparent(value: Any) -> Context | None:
    """A parent context from a ``traceparent`` value, or None when it is absent or invalid."""
    if not isinstance(value, str) or not value:
        return None
    ctx = _PROPAGATOR.extract({TRACEPARENT_HEADER: value})
    span_context = trace.get_current_span(ctx).get_span_context()
    return ctx if span_context.is_valid else None


def context_from_annotations(annotations: Mapping[str, Any] | None) -> Context | None:
    """The parent context stored on a pod's annotations, or None."""
    if not isinstance(annotations, Mapping):
        return None
    return context_from_traceparent(annotations.get(TRACE_CONTEXT_ANNOTATION))


def context_from_pod(pod: Any) -> Context | None:
    """The parent context stored on a pod (raw JSON dict), or None."""
    metadata = pod.get("metadata") if isinstance(pod, Mapping) else None
    return context_from_annotations(
        metadata.get("annotations") if isinstance(metadata, Mapping) else None
    )


def pod_trace_id(pod: Any) -> str | None:
    """The trace id (32 lower-case hex digits) of the trace context on a pod, or None: what to
    look the pod's placement up by in a trace store."""
    ctx = context_from_pod(pod)
    if ctx is None:
        return None
    return f"{trace.get_current_span(ctx).get_span_context().trace_id:032x}"


def trace_annotation(span: Span) -> dict[str, str]:
    """``{"hami.io/trace-context": <traceparent of span>}``, ready to merge into annotations."""
    return {TRACE_CONTEXT_ANNOTATION: format_traceparent(span.get_span_context())}
