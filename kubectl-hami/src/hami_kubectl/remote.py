"""The two optional services the CLI reads beside the API server: Prometheus (what is used,
from the monitors' and the extender's metrics) and the extender's explanation API (why a pod
is pending, as the extender decided). Each failure is a `RemoteError` naming the URL and what
to check; the CLI then says the column or the part is unavailable, and goes on."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx


class RemoteError(RuntimeError):
    pass


def _get(url: str, params: dict[str, str] | None, verify: ssl.SSLContext | bool) -> Any:
    try:
        reply = httpx.get(url, params=params, timeout=10, verify=verify)
    except httpx.HTTPError as exc:
        raise RemoteError(f"{url}: {exc}") from None
    if reply.status_code == 404:
        return None
    if reply.status_code != 200:
        raise RemoteError(f"{url}: HTTP {reply.status_code}: {reply.text[:200]}")
    try:
        return reply.json()
    except ValueError:
        raise RemoteError(f"{url}: the answer is not JSON") from None


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query's samples: (labels, value)."""
        doc = _get(f"{self.url}/api/v1/query", {"query": expr}, True)
        if not isinstance(doc, dict) or doc.get("status") != "success":
            raise RemoteError(f"{self.url}: query {expr!r} failed: {doc}")
        return [(r.get("metric") or {}, float(r["value"][1])) for r in doc["data"]["result"]]


class Extender:
    def __init__(self, url: str, ca_file: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            try:
                self.verify = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise RemoteError(f"--extender-ca {ca_file}: {exc}") from None

    def explain(self, namespace: str, name: str) -> dict[str, Any] | None:
        doc = _get(f"{self.url}/api/v1/explain/{namespace}/{name}", None, self.verify)
        return doc if isinstance(doc, dict) else None
