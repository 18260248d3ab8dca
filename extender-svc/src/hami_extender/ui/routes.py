"""The web UI's routes (``GET /ui``, ``/ui/nodes/{node}``, ``/ui/pending``,
``/ui/pods/{namespace}/{pod}``): each page is built in a worker thread from the extender's
memory, so a page view never holds /filter's event loop and never calls the API server."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import hami_rustcore as core
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from hami_extender.explain import Explanations, pending_reason
from hami_extender.pending import PendingPod
from hami_extender.ui import pages
from hami_extender.ui.view import Views


@dataclass
class UiSources:
    cluster: core.Cluster
    views: Views
    explanations: Explanations
    pending: Callable[[], Mapping[str, PendingPod]]
    traces_url: str


def _int(value: str | None, default: int = 1) -> int:
    try:
        return int(value or default)
    except ValueError:
        return default


def pending_rows(src: UiSources, q: str = "") -> list[tuple[PendingPod, str, str]]:
    rows = []
    for p in sorted(src.pending().values(), key=lambda p: (p.namespace, p.name)):
        if q and q.lower() not in f"{p.namespace}/{p.name}".lower():
            continue
        record = src.explanations.get(p.namespace, p.name, p.uid)
        summary = record["summary"] if record else "not filtered yet by this extender"
        rows.append((p, pending_reason(record), summary))
    return rows


def pod_status(src: UiSources, namespace: str, name: str) -> tuple[str, str]:
    """Where the pod stands, and its pending reason ('' when it is not pending)."""
    waiting = next((p for p in src.pending().values()
                    if p.namespace == namespace and p.name == name), None)  # fmt: skip
    if waiting is not None:
        return "pending", pending_reason(src.explanations.get(namespace, name, waiting.uid))
    record = src.explanations.get(namespace, name)
    placed = src.cluster.pod(record["uid"]) if record else None
    if placed is not None:
        how = "reserved on" if placed.reserved_at is not None else "bound to"
        return f"{how} {placed.node}", ""
    return "not pending (running, finished or deleted)", ""


def ui_routes(src: UiSources) -> list[Route]:
    def html(build: Callable[[], str], status: int = 200) -> Callable[[], Response]:
        return lambda: HTMLResponse(build(), status_code=status)

    async def root(_: Request) -> Response:
        return RedirectResponse("/ui", status_code=307)

    async def overview(request: Request) -> Response:
        q, sort = request.query_params.get("q", ""), request.query_params.get("sort", "")
        page = _int(request.query_params.get("page"))

        def build() -> str:
            snap = src.views.snapshot()
            return pages.overview(snap, len(src.pending()), q, page, sort)

        return await run_in_threadpool(html(build))

    async def node(request: Request) -> Response:
        name = request.path_params["node"]

        def build() -> Response:
            snap = src.views.snapshot()
            row = snap.by_name.get(name)
            if row is None:
                return HTMLResponse(pages.not_found(f"no node {name} with devices"), 404)
            return HTMLResponse(pages.node_page(row, src.views.pods_on(snap, name)))

        return await run_in_threadpool(build)

    async def pending(request: Request) -> Response:
        q, page = request.query_params.get("q", ""), _int(request.query_params.get("page"))
        return await run_in_threadpool(
            html(lambda: pages.pending_page(pending_rows(src, q), q, page))
        )

    async def pod(request: Request) -> Response:
        ns, name = request.path_params["namespace"], request.path_params["pod"]

        def build() -> str:
            status, reason = pod_status(src, ns, name)
            record = src.explanations.get(ns, name)
            return pages.pod_page(ns, name, record, status=status, reason=reason,
                                  traces_url=src.traces_url)  # fmt: skip

        return await run_in_threadpool(html(build))

    return [
        Route("/", root, methods=["GET"]),
        Route("/ui", overview, methods=["GET"]),
        Route("/ui/nodes/{node}", node, methods=["GET"]),
        Route("/ui/pending", pending, methods=["GET"]),
        Route("/ui/pods/{namespace}/{pod}", pod, methods=["GET"]),
    ]
