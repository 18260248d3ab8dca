"""Per-app Prometheus registry and its /metrics route."""

from __future__ import annotations

import asyncio

import httpx
from hami_common.telemetry import metrics_route, new_registry
from prometheus_client import Counter
from starlette.applications import Starlette


async def _get(app: Starlette, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


def test_metrics_route_serves_only_its_own_registry() -> None:
    mine, other = new_registry(), new_registry()
    Counter("hami_demo_total", "demo", registry=mine).inc(3)
    Counter("hami_other_total", "other", registry=other).inc()
    response = asyncio.run(_get(Starlette(routes=[metrics_route(mine)]), "/metrics"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "hami_demo_total 3.0" in response.text
    assert "hami_other_total" not in response.text
