"""The trace store of the harness: Jaeger's configuration, the query client, and (e2e) a span
exported over OTLP by our own tracing set-up read back through Jaeger's query API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hami_common.telemetry import TRACE_CONTEXT_ANNOTATION, setup_tracing, trace_annotation
from hami_e2e.backend import Cluster
from hami_e2e.jaeger import (
    JaegerError,
    JaegerQuery,
    JaegerServer,
    Trace,
    otel_env,
    pod_trace_id,
    spans_from_otlp,
    trace_api_url,
    trace_url,
)


def _endpoints(doc: object) -> list[str]:
    if isinstance(doc, dict):
        found = [str(v) for k, v in doc.items() if k == "endpoint"]
        return found + [e for v in doc.values() for e in _endpoints(v)]
    return []


def test_config_listens_on_loopback_only_with_memory_storage(tmp_path: Path) -> None:
    server = JaegerServer.create(tmp_path / "jaeger", tmp_path / "w")
    doc = yaml.safe_load(server.config.read_text())
    assert doc == server.config_doc()
    endpoints = _endpoints(doc)
    assert sorted(endpoints) == sorted(
        f"127.0.0.1:{p}" for p in (server.otlp_port, server.query_port, server.grpc_port)
    )
    assert doc["service"]["telemetry"]["metrics"]["level"] == "none"  # no fixed 8888 listener
    assert doc["extensions"]["jaeger_storage"]["backends"]["memstore"]["memory"]
    assert server.argv() == [str(tmp_path / "jaeger"), "--config", str(server.config)]
    assert server.otlp_endpoint == f"http://127.0.0.1:{server.otlp_port}"


def test_otel_env_points_services_at_the_store() -> None:
    assert otel_env(None, "hami-extender") == {}
    env = otel_env("http://127.0.0.1:4318", "hami-extender")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert env["OTEL_SERVICE_NAME"] == "hami-extender"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"


def test_links_and_the_trace_id_on_a_pod() -> None:
    tid = "0af7651916cd43dd8448eb211c80319c"
    assert trace_url("http://127.0.0.1:16686/", tid) == f"http://127.0.0.1:16686/trace/{tid}"
    assert trace_api_url("http://h:1", tid) == f"http://h:1/api/v3/traces/{tid}"
    pod = {"metadata": {"annotations": {TRACE_CONTEXT_ANNOTATION: f"00-{tid}-b7ad6b7169203331-01"}}}
    assert pod_trace_id(pod) == tid
    assert pod_trace_id({"metadata": {"annotations": {TRACE_CONTEXT_ANNOTATION: "junk"}}}) is None
    assert pod_trace_id({}) is None


def test_otlp_json_spans_with_typed_attributes() -> None:
    doc = {"result": {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "hami-extender"}}]},
        "scopeSpans": [{"scope": {}, "spans": [{
            "traceId": "01" * 16, "spanId": "02" * 8, "parentSpanId": "03" * 8,
            "name": "filter", "kind": 1, "status": {"code": 2, "message": "bad pod"},
            "attributes": [
                {"key": "hami.filter.node", "value": {"stringValue": "n1"}},
                {"key": "hami.filter.failed_count", "value": {"intValue": "3"}},
                {"key": "hami.filter.simulation", "value": {"boolValue": True}},
                {"key": "hami.filter.score", "value": {"doubleValue": 0.5}},
                {"key": "hami.allocate.containers",
                 "value": {"arrayValue": {"values": [{"stringValue": "cuda"}]}}},
            ],
        }]}],
    }]}}  # fmt: skip
    [span] = spans_from_otlp(doc)
    assert (span.service, span.name, span.parent_id) == ("hami-extender", "filter", "03" * 8)
    assert span.attributes == {
        "hami.filter.node": "n1", "hami.filter.failed_count": 3, "hami.filter.simulation": True,
        "hami.filter.score": 0.5, "hami.allocate.containers": ["cuda"],
    }  # fmt: skip
    assert (span.status_code, span.status_message) == (2, "bad pod")
    trace = Trace("01" * 16, [span, span])
    with pytest.raises(JaegerError, match="2 spans named 'filter', expected one"):
        trace.span("filter")
    assert spans_from_otlp({}) == []


@pytest.mark.e2e
def test_spans_exported_by_a_service_are_read_back_by_trace_id(kube_cluster: Cluster) -> None:
    endpoint, base = kube_cluster.otlp_endpoint, kube_cluster.traces_url
    assert endpoint is not None
    assert base is not None
    since = datetime.now(UTC) - timedelta(seconds=5)
    provider = setup_tracing("hami-e2e-probe", otel_env(endpoint, "hami-e2e-probe"))
    tracer = provider.get_tracer("probe")
    with tracer.start_as_current_span("admission") as root:
        pod = {"metadata": {"annotations": trace_annotation(root)}}
        with tracer.start_as_current_span("filter", attributes={"k8s.pod.name": "p"}):
            pass
    provider.shutdown()  # flushes the batch: nothing is lost on the way out
    trace_id = pod_trace_id(pod)
    assert trace_id is not None
    query = JaegerQuery(base)
    trace = query.wait_trace(trace_id, lambda t: t.has("admission", "filter"), within=30)
    admission, child = trace.span("admission"), trace.span("filter")
    assert admission.service == child.service == "hami-e2e-probe"
    assert admission.parent_id == ""
    assert child.parent_id == admission.span_id
    assert child.attributes["k8s.pod.name"] == "p"
    assert "hami-e2e-probe" in query.services()
    assert {s.trace_id for s in query.find("hami-e2e-probe", since)} == {trace_id}
    assert query.trace("0" * 31 + "1") is None  # an unknown trace is None, not an error
