"""The pod trace annotation: written from a span, read back as the parent of the next step."""

from __future__ import annotations

from typing import Any

from hami_common.telemetry import (
    TRACE_CONTEXT_ANNOTATION,
    context_from_annotations,
    context_from_pod,
    context_from_traceparent,
    format_traceparent,
    in_memory_tracing,
    trace_annotation,
)
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace


def test_a_later_step_joins_the_trace_written_on_the_pod() -> None:
    provider, exporter = in_memory_tracing("svc")
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("admission") as admission:
        annotations = trace_annotation(admission)
    pod = {"metadata": {"annotations": annotations}}
    with tracer.start_as_current_span("filter", context=context_from_pod(pod)):
        pass
    first, second = exporter.get_finished_spans()
    assert second.parent is not None
    assert second.context.trace_id == first.context.trace_id
    assert second.parent.span_id == first.context.span_id
    provider.shutdown()


def test_the_annotation_is_exactly_a_w3c_traceparent() -> None:
    ctx = trace.SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=trace.TraceFlags(1),
    )
    value = format_traceparent(ctx)
    assert value == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    parent = context_from_annotations({TRACE_CONTEXT_ANNOTATION: value})
    assert parent is not None
    got = trace.get_current_span(parent).get_span_context()
    assert (got.trace_id, got.span_id) == (ctx.trace_id, ctx.span_id)


def test_invalid_or_missing_values_give_no_parent() -> None:
    assert (
        context_from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01") is None
    )
    assert context_from_traceparent("garbage") is None
    assert context_from_traceparent(42) is None
    assert context_from_annotations(None) is None
    assert context_from_pod({"metadata": {"annotations": "x"}}) is None
    assert context_from_pod({"metadata": None}) is None


@given(st.recursive(st.none() | st.text() | st.integers(), lambda c: st.dictionaries(st.text(), c)))
def test_arbitrary_pods_never_crash(pod: Any) -> None:
    if isinstance(pod, dict):
        context_from_pod(pod)
    context_from_traceparent(pod)
