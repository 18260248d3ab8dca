"""uvicorn's HTTP/1.1 protocol (httptools) with read timeouts, and the client certificate in the
ASGI scope.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``): a client that sends
half a request header, or half a body, holds its connection (and a task) forever. Here, as Go's
``http.Server`` does with ``ReadHeaderTimeout`` and ``ReadTimeout``:

- a request's header must arrive in full within ``header_timeout`` seconds of its first byte (of
  the connection, for the first request: a connection that sends nothing is closed too);
- its body must arrive in full within ``body_timeout`` seconds of the end of its header.

Both are deadlines, not idle timers: a client that trickles one byte a second is cut all the
same. A client that stalls gets ``408 Request Timeout`` (when no answer was started) and the
connection is closed; the app, if it was reading the body, sees ``http.disconnect``. Time spent
while the server itself has paused reading (flow control, a pipelined request queued behind a
slow one) does not count against the client. The idle time between requests stays uvicorn's
keep-alive timeout.

Over TLS the scope carries the ASGI TLS extension (``scope["extensions"]["tls"]``) with the
client certificate the handshake verified (``client_cert_name`` is None when none was sent), so
an app can require one on some routes and not others.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}  # fmt: skip


def _subject(cert: dict[str, Any]) -> str:
    """RFC 4514 text of a certificate's subject, most specific first
    (``CN=system:kube-scheduler,O=...``)."""
    return ",".join(
        f"{_SHORT.get(key, key)}={value}"
        for rdn in reversed(cert.get("subject", ()))
        for key, value in rdn
    )


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension's fields for a connection (None when it is not TLS)."""
    sslobj = transport.get_extra_info("ssl_object")
    if not isinstance(sslobj, ssl.SSLObject | ssl.SSLSocket):
        return None
    cert = sslobj.getpeercert()  # a dict only for a certificate the handshake verified
    der = sslobj.getpeercert(binary_form=True) if cert else None
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": _subject(cert) if cert else None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(sslobj.version() or ""),
        "cipher_suite": None,
    }


class ReadTimeoutProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with the header and body deadlines; build one with
    `read_timeout_protocol` (uvicorn instantiates the class itself)."""

    header_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 30.0

    _read_timer: asyncio.TimerHandle | None = None
    _reading: str = ""  # "header", "body" or "" (between requests)
    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = tls_extension(transport)
        self._arm("header", self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": cast("dict[object, object]", self._tls)}
        if self._reading != "header":  # the first request's timer runs from the connection
            self._arm("header", self.header_timeout)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            self._arm("body", self.body_timeout)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, what: str, seconds: float) -> None:
        self._disarm()
        self._reading = what
        self._read_timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._reading = ""

    def _expired(self) -> None:
        what = self._reading
        self._read_timer = None
        if self.transport.is_closing():
            return
        flow: FlowControl | None = self.flow
        if flow is not None and flow.read_paused:  # we stopped reading, not the
            self._arm(what, self.header_timeout if what == "header" else self.body_timeout)
            return  # client: its clock restarts when we read again
        self._reading = ""
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            limit = self.header_timeout if what == "header" else self.body_timeout
            message = f"the request {what} did not arrive within {limit:g}s".encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"connection: close\r\ncontent-length: " + str(len(message)).encode()
                + b"\r\n\r\n" + message
            )  # fmt: skip
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app reads http.disconnect; its answer is dropped
            cycle.message_event.set()
        self.transport.close()


def read_timeout_protocol(header_timeout: float, body_timeout: float) -> type[ReadTimeoutProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these deadlines (seconds)."""
    return type(
        "ReadTimeoutProtocol",
        (ReadTimeoutProtocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
