"""The local trace store: Jaeger v2 as a process on loopback, and a client of its query API.

`JaegerServer` writes Jaeger's configuration (an OTLP/HTTP receiver, in-memory storage, the
query service's HTTP and gRPC APIs, all on free loopback ports, no self-telemetry listener) and
gives the command line that the cluster starts. Services export to `otlp_endpoint` through the
standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (`otel_env`). The trace of a pod is read back with
`JaegerQuery` (``/api/v3``, OTLP JSON) by the trace id on the pod (`pod_trace_id`); `trace_url`
is its link for people.

    query = JaegerQuery(cluster.jaeger.query_url)
    trace = query.wait_trace(pod_trace_id(pod), until=lambda t: t.has("Allocate"))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from hami_common.telemetry import pod_trace_id

from hami_e2e.components import free_port

__all__ = [
    "JaegerError",
    "JaegerQuery",
    "JaegerServer",
    "Span",
    "Trace",
    "otel_env",
    "pod_trace_id",
    "trace_api_url",
    "trace_url",
]

Json = dict[str, Any]
STORE = "memstore"
MAX_TRACES = 100_000


class JaegerError(RuntimeError):
    """The query API answered something other than a trace, or not in time."""


@dataclass(frozen=True)
class JaegerServer:
    """Jaeger's ports and configuration for one cluster (not a process: the cluster runs it)."""

    binary: Path
    config: Path
    otlp_port: int
    query_port: int
    grpc_port: int

    @classmethod
    def create(cls, binary: Path, workdir: Path) -> JaegerServer:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        otlp, query, grpc = sorted(ports)
        server = cls(binary, workdir / "jaeger.yaml", otlp, query, grpc)
        workdir.mkdir(parents=True, exist_ok=True)
        server.config.write_text(yaml.safe_dump(server.config_doc(), sort_keys=False))
        return server

    def config_doc(self) -> Json:
        """Jaeger v2's configuration (an OpenTelemetry Collector pipeline with Jaeger's
        storage and query extensions): every listener on 127.0.0.1."""
        return {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query"],
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": ["jaeger_storage_exporter"],
                    }
                },
                # no metrics listener (the default one is a fixed port, 8888)
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
            },
            "extensions": {
                "jaeger_storage": {"backends": {STORE: {"memory": {"max_traces": MAX_TRACES}}}},
                "jaeger_query": {
                    "storage": {"traces": STORE},
                    "enable_tracing": False,
                    "http": {"endpoint": f"127.0.0.1:{self.query_port}"},
                    "grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}"},
                },
            },
            "receivers": {
                "otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{self.otlp_port}"}}}
            },
            "processors": {"batch": {"timeout": "100ms"}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": STORE}},
        }

    def argv(self) -> list[str]:
        return [str(self.binary), "--config", str(self.config)]

    @property
    def otlp_endpoint(self) -> str:
        """The OTLP/HTTP base URL (``/v1/traces`` is appended by the exporters)."""
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        """The query service: its HTTP APIs and the UI."""
        return f"http://127.0.0.1:{self.query_port}"

    def ready(self) -> bool:
        """The query API answers and the OTLP receiver accepts an (empty) export."""
        try:
            services = httpx.get(f"{self.query_url}/api/v3/services", timeout=2.0)
            export = httpx.post(
                f"{self.otlp_endpoint}/v1/traces",
                content=b"",
                headers={"Content-Type": "application/x-protobuf"},
                timeout=2.0,
            )
        except httpx.HTTPError:
            return False
        return services.status_code == 200 and export.status_code == 200


def otel_env(endpoint: str | None, service_name: str) -> dict[str, str]:
    """The standard variables that make a service export its spans to `endpoint` (none when
    there is no trace store)."""
    if endpoint is None:
        return {}
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": service_name,
        # short batches, so a trace is complete in the store soon after the last step
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def trace_url(base: str, trace_id: str) -> str:
    """The trace's page in the Jaeger UI served at `base` (the query URL)."""
    return f"{base.rstrip('/')}/trace/{trace_id}"


def trace_api_url(base: str, trace_id: str) -> str:
    """The trace as OTLP JSON from the query API (readable where the UI is a placeholder)."""
    return f"{base.rstrip('/')}/api/v3/traces/{trace_id}"


# -- reading traces ---------------------------------------------------------------------------


def _value(value: Mapping[str, Any]) -> Any:
    """An OTLP JSON AnyValue as Python (64-bit ints are JSON strings)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def _attributes(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value") or {}) for a in items or ()}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: Mapping[str, Any]
    status_code: int
    status_message: str


@dataclass(frozen=True)
class Trace:
    trace_id: str
    spans: list[Span] = field(default_factory=list)

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]

    def has(self, *names: str) -> bool:
        return all(self.named(n) for n in names)

    def span(self, name: str) -> Span:
        """The one span called `name` (an error when there are none or several)."""
        found = self.named(name)
        if len(found) != 1:
            raise JaegerError(
                f"trace {self.trace_id}: {len(found)} spans named {name!r}, expected one; "
                f"spans: {sorted(s.name for s in self.spans)}"
            )
        return found[0]


def spans_from_otlp(doc: Mapping[str, Any]) -> list[Span]:
    """The spans of an ``/api/v3`` answer (``{"result": {"resourceSpans": [...]}}``)."""
    spans: list[Span] = []
    for rs in (doc.get("result") or {}).get("resourceSpans") or []:
        service = str(_attributes((rs.get("resource") or {}).get("attributes")).get(
            "service.name", ""
        ))  # fmt: skip
        for ss in rs.get("scopeSpans") or []:
            for s in ss.get("spans") or []:
                status = s.get("status") or {}
                spans.append(
                    Span(
                        service=service,
                        name=str(s.get("name", "")),
                        trace_id=str(s.get("traceId", "")),
                        span_id=str(s.get("spanId", "")),
                        parent_id=str(s.get("parentSpanId", "")),
                        attributes=_attributes(s.get("attributes")),
                        status_code=int(status.get("code", 0)),
                        status_message=str(status.get("message", "")),
                    )
                )
    return spans


class JaegerQuery:
    """A small client of Jaeger's ``/api/v3`` query API."""

    def __init__(self, base: str, timeout: float = 5.0) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Json | None:
        try:
            reply = httpx.get(f"{self.base}{path}", params=params, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise JaegerError(f"Jaeger query API at {self.base}: {exc}") from None
        if reply.status_code == 404:
            return None
        if reply.status_code != 200:
            raise JaegerError(f"GET {path}: HTTP {reply.status_code}: {reply.text[:500]}")
        doc: Json = reply.json()
        return doc

    def services(self) -> list[str]:
        doc = self._get("/api/v3/services") or {}
        return sorted(doc.get("services") or [])

    def trace(self, trace_id: str) -> Trace | None:
        """The trace, or None while the store has no span of it."""
        doc = self._get(f"/api/v3/traces/{trace_id}")
        return None if doc is None else Trace(trace_id, spans_from_otlp(doc))

    def find(self, service: str, since: datetime, until: datetime | None = None) -> list[Span]:
        """Every span of the traces that `service` took part in between the two times."""
        end = until or datetime.now(UTC)
        doc = self._get("/api/v3/traces", {
            "query.service_name": service,
            "query.start_time_min": since.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "query.start_time_max": end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "query.num_traces": "1000",
        })  # fmt: skip
        return [] if doc is None else spans_from_otlp(doc)

    def wait_trace(
        self, trace_id: str, until: Callable[[Trace], bool], within: float = 30.0
    ) -> Trace:
        """Poll until the trace satisfies `until` (services export in batches)."""
        deadline = time.monotonic() + within
        last: Trace | None = None
        while True:
            last = self.trace(trace_id) or last
            if last is not None and until(last):
                return last
            if time.monotonic() > deadline:
                seen = sorted(f"{s.service}:{s.name}" for s in last.spans) if last else []
                raise JaegerError(
                    f"trace {trace_id} not complete in {within:.0f}s; spans so far: {seen}"
                )
            time.sleep(0.2)
