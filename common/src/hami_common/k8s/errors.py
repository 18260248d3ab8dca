# The Kubernetes reason names (NotFound, Conflict...) are the vocabulary: no "Error" suffix.
# ruff: noqa: N818
"""The adapter's error vocabulary: one exception class per Kubernetes `Status` reason.

Every failure the adapter reports is an `ApiError`: HTTP errors are mapped from the status code
and the `Status` object the API server returns; transport failures (connection refused, TLS,
timeouts, a stream cut mid-response) become `TransportError` with ``status=0``. The HTTP
library's own exceptions never escape.

`KubeClient` records the request on each error (``method`` and the full ``url``), so that
``str(error)`` is one line that says which server answered what, and, for 401 and 403, what to
check: that line is what the retry loops log, once per failure.
"""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """A Kubernetes API call failed.

    ``status`` is the HTTP status code (0 when no response came back), ``reason`` the
    machine-readable `Status.reason` (``"NotFound"``, ``"Conflict"``...), ``message`` the
    server's human message and ``details`` its `Status.details` (causes of an `Invalid`).
    """

    default_reason = "Unknown"

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or self.default_reason
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after
        self.method: str | None = None
        self.url: str | None = None

    def at(self, method: str, url: str) -> ApiError:
        """Record the request that failed (the client does, before raising); returns self."""
        self.method, self.url = method, url
        return self

    @property
    def hint(self) -> str:
        """What to check, for the errors a user can fix; empty for the others."""
        return ""

    def __str__(self) -> str:
        code = f"HTTP {self.status} " if self.status else ""
        where = ""
        if self.url is not None and self.url not in self.message:
            where = f"{self.method} {self.url}: "
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}{code}{self.reason}: {self.message}{hint}"


class BadRequest(ApiError):
    default_reason = "BadRequest"


class Unauthorized(ApiError):
    default_reason = "Unauthorized"

    @property
    def hint(self) -> str:
        return (
            "the API server refused our credentials: check the kubeconfig user (its token, "
            "client certificate or exec plugin) or the ServiceAccount token"
        )


class Forbidden(ApiError):
    default_reason = "Forbidden"

    @property
    def hint(self) -> str:
        action = _verb_and_resource(self.method, self.url)
        return (
            f"check the RBAC rules that grant this user {action}"
            if action
            else ("check the RBAC rules that grant this user the request")
        )


class NotFound(ApiError):
    default_reason = "NotFound"


class MethodNotAllowed(ApiError):
    default_reason = "MethodNotAllowed"


class AlreadyExists(ApiError):
    """A create hit an object of that name (HTTP 409, reason AlreadyExists)."""

    default_reason = "AlreadyExists"


class Conflict(ApiError):
    """An update or patch lost an optimistic-concurrency race (HTTP 409, reason Conflict)."""

    default_reason = "Conflict"


class Gone(ApiError):
    """The requested resourceVersion is too old (HTTP 410, or a watch ERROR event with 410)."""

    default_reason = "Expired"


class Invalid(ApiError):
    """The object failed validation (HTTP 422); ``details["causes"]`` lists the fields."""

    default_reason = "Invalid"


class TooManyRequests(ApiError):
    """The server throttled the call (HTTP 429); ``retry_after`` holds its hint, if any."""

    default_reason = "TooManyRequests"


class ServerError(ApiError):
    """The server failed (HTTP 5xx), e.g. InternalError, ServiceUnavailable, Timeout."""

    default_reason = "InternalError"


class TransportError(ApiError):
    """No HTTP response: connection refused or reset, TLS failure, timeout, broken stream."""

    default_reason = "TransportError"


class ConnectionFailed(TransportError):
    """The connection could not be opened, so the request was never sent."""

    default_reason = "ConnectionFailed"


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _verb_and_resource(method: str | None, url: str | None) -> str:
    """``"list pods"``, ``"update leases.coordination.k8s.io"``... from a request's URL."""
    if not method or not url:
        return ""
    path, _, query = url.partition("://")[2].partition("/")[2].partition("?")
    parts = path.split("/")
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return ""
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]  # namespaces/NS/RESOURCE...; a bare namespaces/NS is the namespace
    if not rest or not rest[0]:
        return ""
    resource = rest[0] + (f"/{rest[2]}" if len(rest) >= 3 else "")
    resource = f"{resource}.{group}" if group else resource
    if method.upper() == "GET":
        verb = "watch" if "watch=true" in query else ("get" if len(rest) >= 2 else "list")
    else:
        verb = _VERBS.get(method.upper(), method.lower())
    return f"{verb} {resource}"


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (the API server sends whole seconds)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from_status(
    status: int, body: bytes | str | dict[str, Any] | None, retry_after: str | None = None
) -> ApiError:
    """Build the `ApiError` subclass for an HTTP error response.

    ``body`` is the response body; a `Status` object gives reason, message and details, any
    other body is kept (truncated) as the message.
    """
    doc: dict[str, Any] = {}
    text = ""
    if isinstance(body, dict):
        doc = body
    elif body:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            doc = parsed
    is_status = doc.get("kind") == "Status"
    reason = str(doc.get("reason") or "") if is_status else ""
    message = str(doc.get("message") or "") if is_status else text.strip()[:500]
    details = doc.get("details") if is_status and isinstance(doc.get("details"), dict) else None
    if status == 409:
        cls: type[ApiError] = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif status >= 500:
        cls = ServerError
    else:
        cls = _BY_STATUS.get(status, ApiError)
    return cls(
        message or f"HTTP {status}",
        status=status,
        reason=reason or None,
        details=details,
        retry_after=parse_retry_after(retry_after),
    )
