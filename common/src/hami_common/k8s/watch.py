"""Watches, and list-then-watch that survives expired resourceVersions.

`watch()` streams one watch request. `list_then_watch()` is the informer loop: it lists, emits
one ``SYNC`` event carrying the full list, then watches from the list's resourceVersion. When
the server closes the watch (its timeout) or the connection breaks, it resumes from the last
resourceVersion it saw (bookmarks included). When that version has expired (HTTP 410, or a
watch ``ERROR`` event with code 410) it lists again and emits a new ``SYNC``: consumers replace
their state with a ``SYNC`` list, then apply ``ADDED``/``MODIFIED``/``DELETED`` events.
`follow()` runs that loop for a consumer forever, starting over after a failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from hami_common.k8s.backoff import LOOP_BACKOFF, Backoff, Retrier
from hami_common.k8s.client import METADATA_ACCEPT, KubeClient, Params, _selectors
from hami_common.k8s.errors import ApiError, Gone, ServerError, TransportError, error_from_status
from hami_common.k8s.resources import Resource

log = logging.getLogger(__name__)

EventType = Literal["SYNC", "ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclass(frozen=True)
class WatchEvent:
    """One change. For ``SYNC`` the object is the whole List (``object["items"]``)."""

    type: EventType
    object: dict[str, Any]

    @property
    def resource_version(self) -> str | None:
        rv = self.object.get("metadata", {}).get("resourceVersion")
        return str(rv) if rv else None


def _parse(line: str) -> WatchEvent:
    try:
        doc = json.loads(line)
    except ValueError:
        raise ServerError("watch: an event is not JSON", reason="InvalidResponse") from None
    kind = doc.get("type") if isinstance(doc, dict) else None
    obj = doc.get("object") if isinstance(doc, dict) else None
    if not isinstance(obj, dict):
        raise ServerError(f"watch: malformed event {line[:200]!r}", reason="InvalidResponse")
    if kind == "ERROR":
        raise error_from_status(int(obj.get("code") or 500), obj)
    if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
        raise ServerError(f"watch: unknown event type {kind!r}", reason="InvalidResponse")
    return WatchEvent(kind, obj)


async def watch(
    client: KubeClient,
    resource: Resource,
    *,
    namespace: str | None = None,
    resource_version: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    timeout_seconds: int = 300,
    metadata_only: bool = False,
    bookmarks: bool = True,
) -> AsyncIterator[WatchEvent]:
    """Stream the events of one watch request until the server ends it.

    Raises `Gone` when ``resource_version`` has expired and `TransportError` when the stream
    breaks; BOOKMARK events are yielded so callers can track the resourceVersion.
    """
    params: Params = _selectors(label_selector, field_selector)
    params["watch"] = "true"
    params["timeoutSeconds"] = timeout_seconds
    if bookmarks:
        params["allowWatchBookmarks"] = "true"
    if resource_version:
        params["resourceVersion"] = resource_version
    headers = {"Accept": f"{METADATA_ACCEPT},application/json"} if metadata_only else None
    async with client.stream(
        resource.path(namespace),
        params=params,
        headers=headers,
        read_timeout=timeout_seconds + 30.0,
    ) as lines:
        async for line in lines:
            yield _parse(line)


async def list_then_watch(
    client: KubeClient,
    resource: Resource,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    metadata_only: bool = False,
    timeout_seconds: int = 300,
) -> AsyncIterator[WatchEvent]:
    """Yield ``SYNC`` then changes, forever; see the module docstring.

    A watch that fails to reconnect ``client.backoff.retries`` times in a row raises its last
    `ApiError`; an event received resets that count. Each reconnect logs one line (the URL and
    the failure).
    """
    resource_version: str | None = None
    failures = 0
    while True:
        if resource_version is None:
            listed = await client.list(
                resource,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                metadata_only=metadata_only,
            )
            resource_version = str(listed["metadata"]["resourceVersion"])
            yield WatchEvent("SYNC", listed)
        try:
            async for event in watch(
                client,
                resource,
                namespace=namespace,
                resource_version=resource_version,
                label_selector=label_selector,
                field_selector=field_selector,
                timeout_seconds=timeout_seconds,
                metadata_only=metadata_only,
            ):
                failures = 0
                resource_version = event.resource_version or resource_version
                if event.type != "BOOKMARK":
                    yield event
        except Gone:
            resource_version = None  # expired: list again
            failures = 0
        except (TransportError, ServerError) as exc:
            failures += 1
            if failures > client.backoff.retries:
                raise
            delay = client.backoff.delay(failures - 1, exc.retry_after)
            log.info("watch of %s broke: %s; reconnecting in %.1fs", resource.plural, exc, delay)
            await asyncio.sleep(delay)
        except ApiError:
            raise


async def follow(
    client: KubeClient,
    resource: Resource,
    apply: Callable[[str, dict[str, Any]], None],
    *,
    what: str,
    log: logging.Logger,
    backoff: Backoff = LOOP_BACKOFF,
    field_selector: str | None = None,
    metadata_only: bool = False,
) -> None:
    """Forever (until cancelled): `list_then_watch`, each event but bookmarks handed to
    ``apply(type, object)``. A failure waits (`Retrier` ``what``, logging to ``log``: growing
    while it keeps failing) and lists again; a list that loads starts a new streak."""
    retry = Retrier(what, log, backoff)
    while True:
        try:
            async for event in list_then_watch(
                client, resource, field_selector=field_selector, metadata_only=metadata_only
            ):
                if event.type != "BOOKMARK":
                    apply(event.type, event.object)
                if event.type == "SYNC":
                    retry.succeeded()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await asyncio.sleep(retry.failed(exc))
