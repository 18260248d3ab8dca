"""Telemetry shared by every service: OpenTelemetry tracing, the pod trace context, Prometheus."""

from hami_common.telemetry.metrics import metrics_route, new_registry, register_build_info
from hami_common.telemetry.propagation import (
    TRACE_CONTEXT_ANNOTATION,
    TRACEPARENT_HEADER,
    context_from_annotations,
    context_from_pod,
    context_from_traceparent,
    format_traceparent,
    pod_trace_id,
    trace_annotation,
)
from hami_common.telemetry.tracing import TelemetryConfigError, in_memory_tracing, setup_tracing

__all__ = [
    "TRACEPARENT_HEADER",
    "TRACE_CONTEXT_ANNOTATION",
    "TelemetryConfigError",
    "context_from_annotations",
    "context_from_pod",
    "context_from_traceparent",
    "format_traceparent",
    "in_memory_tracing",
    "metrics_route",
    "new_registry",
    "pod_trace_id",
    "register_build_info",
    "setup_tracing",
    "trace_annotation",
]
