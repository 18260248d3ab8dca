"""The async Kubernetes API client: raw JSON in and out, typed errors, retries.

Objects are plain ``dict``s as the API server sends them; no typed models. Every method raises
only `ApiError` subclasses (see `errors`); transient failures are retried as `backoff`
describes. The credentials come from `credentials.Credentials`: a 401 makes it read or run them
again once, and the request is retried with the new ones; when the client certificate or CA
changes on disk (or an exec plugin returns a new certificate), new requests go over new
connections with a new TLS context while those in flight finish on the old ones.

Use it as an async context manager, or call `aclose()`::

    async with KubeClient(load_config()) as kube:
        pod = await kube.get(PODS, "web-0", namespace="default")
        await kube.patch(PODS, "web-0", {"metadata": {"labels": {"a": "b"}}}, namespace="default")
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import httpx
import orjson

from hami_common.k8s.backoff import Backoff, is_retryable
from hami_common.k8s.config import ClusterConfig
from hami_common.k8s.connections import Connections
from hami_common.k8s.credentials import Credentials
from hami_common.k8s.errors import (
    ApiError,
    ConnectionFailed,
    Gone,
    ServerError,
    TransportError,
    Unauthorized,
    error_from_status,
)
from hami_common.k8s.resources import Resource

if TYPE_CHECKING:
    from hami_common.k8s.watch import WatchEvent

PatchType = Literal["merge", "strategic", "json", "apply"]
PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
# Ask for metadata only (the server drops spec and status): much less to send and decode.
METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# A server that cannot transform the object answers it whole: callers read only its metadata.
_METADATA_HEADERS = {"Accept": f"{METADATA_ACCEPT},application/json"}

Json = dict[str, Any]
JsonList = list[Json]  # module-level: `KubeClient.list` shadows the builtin in the class
Params = dict[str, str | int]


def _transport_error(exc: httpx.HTTPError, what: str, server: str) -> ApiError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return ConnectionFailed(
                f"{what}: the API server's certificate is not trusted ({exc}): check the "
                "cluster's certificate-authority(-data) or tls-server-name in the kubeconfig"
            )
        cause = str(exc) or type(exc).__name__
        return ConnectionFailed(
            f"{what}: cannot connect to the API server at {server} ({cause}): check the server "
            "URL in the kubeconfig and that the API server is running"
        )
    return TransportError(f"{what}: {type(exc).__name__}: {exc}")


def _decode(body: bytes, what: str) -> Json:
    # orjson: lists of thousands of pods are the adapter's largest responses (~1.5x faster).
    try:
        doc = orjson.loads(body)
    except ValueError:
        raise ServerError(f"{what}: the response is not JSON", reason="InvalidResponse") from None
    if not isinstance(doc, dict):
        raise ServerError(f"{what}: the response is not a JSON object", reason="InvalidResponse")
    return doc


def _selectors(label_selector: str | None, field_selector: str | None) -> Params:
    params: Params = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


class KubeClient:
    """An async client of one API server. Safe to share between tasks of one event loop."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        backoff: Backoff | None = None,
        timeout: float = 30.0,
        user_agent: str = "hami-rs",
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        refresh_interval: float = 60.0,
    ) -> None:
        """``refresh_interval``: how often a token file is re-read and the certificate files
        are checked for a rotation (see `credentials`)."""
        self.config = config
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.credentials = Credentials(config, refresh_interval=refresh_interval)
        self._sni = {"sni_hostname": config.tls_server_name} if config.tls_server_name else None
        self._connections = Connections(
            self.credentials,
            timeout=timeout,
            user_agent=user_agent,
            max_connections=max_connections,
            transport=transport,
        )

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._connections.aclose()

    @staticmethod
    def _headers(extra: Mapping[str, str] | None, authorization: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        if extra:
            headers.update(extra)
        return headers

    async def _reauthorize(self, error: ApiError, generation: int, first: bool) -> bool:
        """After a 401, whether the request may go again with refreshed credentials."""
        return (
            first
            and isinstance(error, Unauthorized)
            and await self.credentials.after_unauthorized(generation)
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Json:
        """Send one request, retrying transient failures, and return the decoded JSON object."""
        content = await self.request_bytes(method, path, params=params, body=body, headers=headers)
        return _decode(content, f"{method} {path}")

    async def request_bytes(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """`request`, returning the response body as sent: for callers that decode it elsewhere
        (the extender hands each ~2 MB page of the pod list to its Rust core as bytes).

        The body is read from the stream rather than kept on the response (``.content``): an
        httpx response sits in a reference cycle, so it lives until a cyclic collection, and
        while one is turned off (the extender's state load) every body read would stay in
        memory."""
        url = f"{self.config.server}{path}"
        what = f"{method} {url}"
        content = None if body is None else json.dumps(body).encode()
        attempt, first_401 = 0, True
        while True:
            authorization, generation = await self.credentials.authorization()
            hdrs = self._headers(headers, authorization)
            if content is not None:
                hdrs.setdefault("Content-Type", "application/json")
            try:
                async with self._connections.lease() as http:
                    req = http.build_request(
                        method, path, params=params, content=content, headers=hdrs,
                        extensions=self._sni,
                    )  # fmt: skip
                    resp = await http.send(req, stream=True)
                    try:
                        answer = b"".join([chunk async for chunk in resp.aiter_bytes()])
                    finally:
                        await resp.aclose()
            except httpx.HTTPError as exc:
                error = _transport_error(exc, what, self.config.server)
            else:
                if resp.status_code < 400:
                    return answer
                error = error_from_status(resp.status_code, answer, resp.headers.get("Retry-After"))
            error.at(method, url)
            if await self._reauthorize(error, generation, first_401):
                first_401 = False
                continue
            if attempt >= self.backoff.retries or not is_retryable(error, method):
                raise error
            await asyncio.sleep(self.backoff.delay(attempt, error.retry_after))
            attempt += 1

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[AsyncIterator[str]]:
        """Open a streaming GET (a watch) and yield its lines; errors become `ApiError`.

        Opening is retried like any GET; a stream that breaks later raises `TransportError`.
        """
        url = f"{self.config.server}{path}"
        what = f"GET {url} (stream)"
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        attempt, first_401 = 0, True
        while True:
            authorization, generation = await self.credentials.authorization()
            lease = AsyncExitStack()
            http = await lease.enter_async_context(self._connections.lease())
            try:
                req = http.build_request(
                    "GET", path, params=params, headers=self._headers(headers, authorization),
                    timeout=timeout, extensions=self._sni,
                )  # fmt: skip
                resp = await http.send(req, stream=True)
            except httpx.HTTPError as exc:
                await lease.aclose()
                error = _transport_error(exc, what, self.config.server)
            else:
                if resp.status_code < 400:
                    break
                try:
                    body = await resp.aread()
                except httpx.HTTPError:
                    body = b""
                finally:
                    await resp.aclose()
                    await lease.aclose()
                error = error_from_status(resp.status_code, body, resp.headers.get("Retry-After"))
            error.at("GET", f"{url}?watch=true" if params and params.get("watch") else url)
            if await self._reauthorize(error, generation, first_401):
                first_401 = False
                continue
            if attempt >= self.backoff.retries or not is_retryable(error, "GET"):
                raise error
            await asyncio.sleep(self.backoff.delay(attempt, error.retry_after))
            attempt += 1

        async def lines() -> AsyncIterator[str]:
            try:
                async for line in resp.aiter_lines():
                    if line:
                        yield line
            except httpx.HTTPError as exc:
                raise _transport_error(exc, what, self.config.server).at("GET", url) from None

        try:
            yield lines()
        finally:
            await resp.aclose()
            await lease.aclose()

    # -- verbs ---------------------------------------------------------------------------

    async def get(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        metadata_only: bool = False,
    ) -> Json:
        """GET one object; ``metadata_only``: as a ``PartialObjectMetadata`` (no spec or
        status: a real node's status, with its image list, is most of its size)."""
        headers = _METADATA_HEADERS if metadata_only else None
        path = resource.path(namespace, name, subresource)
        return await self.request("GET", path, headers=headers)

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        metadata_only: bool = False,
    ) -> Json:
        """List every object, following `continue` tokens; returns one merged List whose
        ``metadata.resourceVersion`` is the snapshot to watch from.

        A continue token that expires mid-way (410) restarts the list from the first page, so
        the result is always one consistent snapshot.
        """
        params = _selectors(label_selector, field_selector)
        params["limit"] = page_size
        headers = {"Accept": f"{METADATA_LIST_ACCEPT},application/json"} if metadata_only else None
        path = resource.path(namespace)
        while True:
            result = await self.request("GET", path, params=params, headers=headers)
            items: JsonList = [*(result.get("items") or [])]
            token = result.get("metadata", {}).get("continue")
            try:
                while token:
                    page = await self.request(
                        "GET", path, params={**params, "continue": token}, headers=headers
                    )
                    items.extend(page.get("items") or [])
                    token = page.get("metadata", {}).get("continue")
            except Gone:
                continue  # the continue token expired: list again from the first page
            break
        result["items"] = items
        result.setdefault("metadata", {}).pop("continue", None)
        result["metadata"].pop("remainingItemCount", None)
        return result

    async def list_metadata(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> Json:
        """A `PartialObjectMetadataList`: names, labels, annotations, no spec or status."""
        return await self.list(
            resource,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            page_size=page_size,
            metadata_only=True,
        )

    async def create(
        self,
        resource: Resource,
        body: Json,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        name: str | None = None,
        field_manager: str | None = None,
    ) -> Json:
        """POST an object (or to a subresource such as ``pods/NAME/binding`` with ``name``)."""
        params: Params = {"fieldManager": field_manager} if field_manager else {}
        path = resource.path(namespace, name, subresource)
        return await self.request("POST", path, params=params, body=body)

    async def replace(
        self,
        resource: Resource,
        body: Json,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Json:
        """PUT the whole object; its ``metadata.resourceVersion`` makes it compare-and-swap."""
        name = body.get("metadata", {}).get("name")
        if not name:
            raise ValueError("replace needs body.metadata.name")
        return await self.request("PUT", resource.path(namespace, name, subresource), body=body)

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Json | JsonList,
        *,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        metadata_only: bool = False,
    ) -> Json:
        """PATCH with a merge, strategic-merge, JSON (RFC 6902) or server-side-apply patch;
        ``metadata_only``: the patched object comes back as a ``PartialObjectMetadata``."""
        if patch_type == "json" and not isinstance(patch, list):
            raise ValueError("a json patch is a list of operations")
        params: Params = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force:
            params["force"] = "true"
        headers = {"Content-Type": PATCH_CONTENT_TYPES[patch_type]}
        if metadata_only:
            headers.update(_METADATA_HEADERS)
        return await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            params=params,
            body=patch,
            headers=headers,
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
        resource_version: str | None = None,
    ) -> Json:
        """DELETE one object; ``resource_version`` is a precondition (Conflict if it moved)."""
        options: Json = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if resource_version is not None:
            options["preconditions"] = {"resourceVersion": resource_version}
        return await self.request("DELETE", resource.path(namespace, name), body=options)

    def watch(self, resource: Resource, **kwargs: Any) -> AsyncIterator[WatchEvent]:
        """`hami_common.k8s.watch.watch` bound to this client (same keyword arguments)."""
        from hami_common.k8s.watch import watch  # noqa: PLC0415 - watch imports this module

        return watch(self, resource, **kwargs)

    def list_then_watch(self, resource: Resource, **kwargs: Any) -> AsyncIterator[WatchEvent]:
        """`hami_common.k8s.watch.list_then_watch` bound to this client."""
        from hami_common.k8s.watch import list_then_watch  # noqa: PLC0415

        return list_then_watch(self, resource, **kwargs)

    async def version(self) -> Json:
        """The server's /version (gitVersion, major, minor...)."""
        return await self.request("GET", "/version")
