"""The extender's ASGI app.

Routes: ``POST /filter``, ``POST /bind`` (kube-scheduler's extender verbs), ``GET /healthz``,
``GET /readyz`` (200 only when the state is synced and this replica leads), ``GET /metrics``
(also on ``--metrics-port``, see server.py), ``GET /api/v1/explain/{namespace}/{pod}`` (the
last decisions about a pod, as JSON; for a pod on the DRA path, its claims' allocation from the
API: hami_extender.dra_explain), ``GET /api/v1/pending`` (the pods waiting, with their
reasons), and the web UI under ``/ui`` (hami_extender.ui).

`create_app(settings)` builds everything from the settings; tests inject the Kubernetes client,
the tracer provider and the Prometheus registry. The lifespan starts the node and pod watches,
the Lease campaign (``--leader-elect``), the Event writers and the reservation sweeper, and stops
them (releasing the Lease) on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import hami_rustcore as core
import orjson
from hami_common.k8s import ApiError, ClusterConfig, ConfigError, KubeClient, load_config
from hami_common.settings.main import kubeconfig_hint, package_version
from hami_common.tasks import cancel_all
from hami_common.telemetry import new_registry, register_build_info, setup_tracing
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hami_extender.dra_explain import explain_dra
from hami_extender.events import EventSink
from hami_extender.explain import Explanations, pending_reason
from hami_extender.extender import Extender
from hami_extender.leader import LeaderElector
from hami_extender.metrics import ExtenderMetrics
from hami_extender.pending import PendingPods
from hami_extender.settings import ExtenderSettings
from hami_extender.sync import StateSync
from hami_extender.ui.routes import UiSources, pending_rows, ui_routes
from hami_extender.ui.view import Views
from hami_extender.wire import bind_result, filter_result

log = logging.getLogger(__name__)
SERVICE_NAME = "hami-extender"
JSON = "application/json"


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


class _Runtime:
    """What the lifespan creates; the routes read it."""

    extender: Extender | None = None
    sync: StateSync | None = None
    elector: LeaderElector | None = None
    pending: PendingPods | None = None
    client: KubeClient | None = None

    def placed(self) -> list[str]:
        """UIDs of the pods in the state: from the API, and reserved in memory only."""
        if self.sync is None:
            return []
        # list() of a dict of str keys runs in C without releasing the GIL: a whole copy, even
        # from a worker thread while the event loop changes the dict
        placed, reserved = list(self.sync.pods), list(self.sync.pending)
        known = set(placed)
        return placed + [u for u in reserved if u not in known]

    def waiting(self) -> dict[str, Any]:
        return self.pending.pods if self.pending is not None else {}


def kube_config(settings: ExtenderSettings) -> ClusterConfig:
    """The API server's connection settings (``--kubeconfig``, ``KUBECONFIG``, in-cluster),
    their certificate files loaded once; `ConfigError` says what to fix, by where they came
    from."""
    try:
        config = load_config(settings.kubeconfig)
        config.ssl_context()
    except ConfigError as exc:
        raise ConfigError(f"{exc}; {kubeconfig_hint(settings.kubeconfig)}") from None
    return config


def create_app(
    settings: ExtenderSettings,
    *,
    client: KubeClient | None = None,
    tracer_provider: TracerProvider | None = None,
    registry: CollectorRegistry | None = None,
) -> ExtenderApp:
    """Build the app. Raises `SettingsError` when the device config file is invalid, and
    `ConfigError` when no ``client`` is given and the kubeconfig does not load (so a bad one
    fails before the server starts, not in its lifespan)."""
    config = kube_config(settings) if client is None else None
    vendors = settings.vendors()
    cluster = core.Cluster(
        settings.node_scheduler_policy, settings.gpu_scheduler_policy, vendors=vendors,
        threads=settings.threads or None,
    )  # fmt: skip
    registry = registry if registry is not None else new_registry()
    metrics = ExtenderMetrics(registry, cluster, legacy=settings.legacy_metrics)
    register_build_info(registry, package_version("hami-extender"))
    explanations = Explanations(settings.explain_capacity)
    rt = _Runtime()

    def pending_counts() -> Counter[str]:
        return Counter(
            pending_reason(explanations.get(p.namespace, p.name, p.uid))
            for p in list(rt.waiting().values())
        )

    metrics.state.placed, metrics.state.pending = rt.placed, pending_counts
    ui = UiSources(cluster, Views(cluster, rt.placed, settings.ui_refresh_seconds),
                   explanations, rt.waiting, settings.traces_url)  # fmt: skip

    def is_leader() -> bool:
        return rt.elector is None or rt.elector.is_leader

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            provider = tracer_provider
            if provider is None:
                provider = setup_tracing(SERVICE_NAME)
                stack.callback(provider.shutdown)
            kube = client
            if kube is None:
                assert config is not None  # noqa: S101  # loaded by create_app
                kube = KubeClient(config, user_agent=SERVICE_NAME)
                stack.push_async_callback(kube.aclose)
            sync = StateSync(kube, cluster, settings.node_label_selector)
            events = EventSink(kube, settings.scheduler_name, known=sync.pods.__contains__)
            if settings.leader_elect:
                rt.elector = LeaderElector(
                    kube, settings.lease_name, settings.lease_namespace,
                    settings.identity or default_identity(), settings.lease_duration_seconds,
                )  # fmt: skip
            rt.pending = PendingPods(kube, settings.scheduler_name)
            extender = Extender(
                settings, cluster=cluster, sync=sync, client=kube, events=events,
                explanations=explanations, metrics=metrics,
                tracer=provider.get_tracer("hami_extender"), is_leader=is_leader,
                pending=rt.pending,
            )  # fmt: skip
            tasks = [
                asyncio.create_task(sync.run(), name="watches"),
                asyncio.create_task(rt.pending.run(), name="pending pods"),
                asyncio.create_task(events.run(), name="events"),
                asyncio.create_task(_sweep(extender, settings.reservation_ttl_seconds, is_leader)),
            ]
            if rt.elector is not None:
                tasks.append(asyncio.create_task(rt.elector.run(), name="lease"))
            rt.extender, rt.sync, rt.client = extender, sync, kube
            try:
                yield
            finally:
                rt.extender = rt.client = None
                await cancel_all(tasks, ignore_errors=True)
                if rt.elector is not None:
                    await rt.elector.release()

    def verb(
        handler: Callable[[Extender, bytes], Awaitable[bytes]], error: Callable[[str], bytes]
    ) -> Verb:
        async def answer(body: bytes, over_limit: bool) -> tuple[int, bytes]:
            if over_limit:
                limit = settings.max_request_bytes
                return 200, error(f"request body exceeds {limit} bytes; raise --max-request-bytes")
            if not body:
                return 400, b"Please send a request body"
            if rt.extender is None:
                return 200, error("hami-extender is starting or stopping")
            return 200, await handler(rt.extender, body)

        return answer

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        if rt.sync is None or not rt.sync.synced:
            return PlainTextResponse("state not synced", status_code=503)
        if not is_leader():
            return PlainTextResponse("standby: not the leader", status_code=503)
        return PlainTextResponse("ok")

    def asks_devices(pod: dict[str, Any]) -> bool:
        try:
            return cluster.pod_request(orjson.dumps(pod)).has_devices()
        except core.CoreError:
            return True  # the extender refuses it: not a DRA pod to explain

    async def explain(request: Request) -> Response:
        ns, pod = request.path_params["namespace"], request.path_params["pod"]
        found = explanations.get(ns, pod)
        if found is None and rt.client is not None:
            try:
                found = await explain_dra(rt.client, ns, pod, asks_devices)
            except ApiError as exc:
                failed = {"error": f"reading pod {ns}/{pod} from the API failed: {exc}"}
                return Response(orjson.dumps(failed), status_code=502, media_type=JSON)
        if found is None:
            body: dict[str, Any] = {
                "error": f"no decision recorded for pod {ns}/{pod} by this replica: it was not "
                "filtered yet, asks for no devices nor DRA claims, or was forgotten (oldest first)",
            }
            return Response(orjson.dumps(body), status_code=404, media_type=JSON)
        return Response(orjson.dumps(found), media_type=JSON)

    async def pending(_: Request) -> Response:
        def build() -> bytes:
            return orjson.dumps({"pods": [
                {"namespace": p.namespace, "pod": p.name, "uid": p.uid, "created": p.created,
                 "reason": reason, "summary": summary}
                for p, reason, summary in pending_rows(ui)
            ]})  # fmt: skip

        return Response(await run_in_threadpool(build), media_type=JSON)

    async def metrics_text(_: Request) -> Response:
        return Response(await run_in_threadpool(metrics.render), media_type=CONTENT_TYPE_LATEST)

    verbs = {
        "/filter": verb(Extender.filter, lambda e: filter_result(error=e)),
        "/bind": verb(Extender.bind, bind_result),
    }
    rest = Starlette(
        routes=[
            *(Route(path, _post_only, methods=["GET", "PUT", "DELETE", "PATCH"]) for path in verbs),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/api/v1/explain/{namespace}/{pod}", explain, methods=["GET"]),
            Route("/api/v1/pending", pending, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"], name="metrics"),
            *ui_routes(ui),
        ],
        lifespan=lifespan,
    )
    app = ExtenderApp(
        rest, verbs, settings.max_request_bytes, client_cert=settings.client_ca_file is not None
    )
    app.metrics_app = Starlette(routes=[Route("/metrics", metrics_text, methods=["GET"])])
    return app


async def _post_only(_: Request) -> Response:
    return PlainTextResponse("Method Not Allowed", status_code=405, headers={"Allow": "POST"})


# a verb's handler: (body, whether it was over the limit) -> (status, answer)
Verb = Callable[[bytes, bool], Awaitable[tuple[int, bytes]]]
_JSON_HEADERS = [(b"content-type", b"application/json")]
_TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]


class ExtenderApp:
    """The ASGI app: ``POST /filter`` and ``POST /bind`` straight from ASGI (kube-scheduler's
    scheduling cycle is serial and waits on every /filter, so that path skips the framework's
    middleware, routing and request objects: about a sixth of its time at 5,000 nodes);
    everything else, and the lifespan, through the Starlette app. With ``client_cert`` the
    verbs answer 403 to a client whose TLS handshake verified no certificate (see
    `hami_common.serving.protocol`); the other routes stay open."""

    metrics_app: Starlette
    """``/metrics`` alone, for the metrics port (server.py)."""

    def __init__(
        self, rest: Starlette, verbs: dict[str, Verb], limit: int, *, client_cert: bool = False
    ) -> None:
        self.rest, self.verbs, self.limit = rest, verbs, limit
        self.client_cert = client_cert

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        verb = self.verbs.get(scope["path"]) if scope["type"] == "http" else None
        if verb is None or scope["method"] != "POST":
            await self.rest(scope, receive, send)
            return
        if self.client_cert and not _verified_client(scope):
            await _respond(send, 403, FORBIDDEN)  # the body is not read (uvicorn skips it)
            return
        read = await self._body(receive)
        if read is None:  # the client went away
            return
        body, over = read
        try:
            status, answer = await verb(body, over)
        except Exception:  # the handlers answer every error themselves; this is a bug
            log.exception("%s failed", scope["path"])
            status, answer = 500, b"Internal Server Error"
        await _respond(send, status, answer)

    async def _body(self, receive: Receive) -> tuple[bytes, bool] | None:
        """The request body and whether it exceeds the limit (then the rest is drained, not
        kept); None when the client disconnected."""
        chunks: list[bytes] = []
        size, over = 0, False
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            over = over or size > self.limit
            if not over:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), over


FORBIDDEN = (
    b"a client certificate signed by the extender's --client-ca-file is required for "
    b"/filter and /bind (kube-scheduler's extender tlsConfig certFile and keyFile)"
)


def _verified_client(scope: Scope) -> bool:
    tls = (scope.get("extensions") or {}).get("tls") or {}
    return bool(tls.get("client_cert_name"))


async def _respond(send: Send, status: int, answer: bytes) -> None:
    headers = _JSON_HEADERS if status == 200 else _TEXT_HEADERS
    length = (b"content-length", str(len(answer)).encode())
    await send({"type": "http.response.start", "status": status, "headers": [*headers, length]})
    await send({"type": "http.response.body", "body": answer})


async def _sweep(extender: Extender, ttl: float, is_leader: Callable[[], bool]) -> None:
    """Release reservations not bound within the TTL (checked a few times per TTL)."""
    while True:
        await asyncio.sleep(min(max(ttl / 4, 0.05), 5.0))
        if is_leader():
            extender.release_expired()
