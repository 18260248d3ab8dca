"""The HTTP connections of a `KubeClient`, renewed when its TLS credentials change.

A client certificate rotated on disk, a new CA bundle, or a new certificate from an exec plugin
bumps `Credentials.tls_version`; the next request then goes through a new ``httpx.AsyncClient``
(a new TLS context and connection pool), while requests and watches in flight finish on the old
one, which is closed when its last one ends. A certificate caught half-written is not used: the
old connections stay until the files are whole.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from hami_common.k8s.config import ConfigError
from hami_common.k8s.credentials import Credentials

log = logging.getLogger(__name__)


class Connections:
    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float,
        user_agent: str,
        max_connections: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: unit tests inject ``httpx.MockTransport`` (then nothing is renewed)."""
        self.credentials = credentials
        self._timeout = timeout
        self._user_agent = user_agent
        self._max_connections = max_connections
        self._transport = transport
        self.current = self._new_client()
        self._version = credentials.tls_version
        # Requests in flight per client, for the clients that some request still uses.
        self._users: dict[httpx.AsyncClient, int] = {}

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.credentials.config.server,
            verify=True if self._transport is not None else self.credentials.ssl_context(),
            timeout=httpx.Timeout(self._timeout),
            headers={"User-Agent": self._user_agent},
            limits=httpx.Limits(max_connections=self._max_connections),
            # HTTP/1.1 only: httpcore's HTTP/2 (one connection for every request and watch)
            # wedged the extender's connection at start in about one start in six, its leader
            # election never answered, as in encode/httpcore#1022.
            transport=self._transport,
        )

    async def _renew(self) -> None:
        self._version = self.credentials.tls_version
        try:
            fresh = self._new_client()
        except ConfigError as exc:  # e.g. a certificate caught half-written: try again later
            log.warning("%s; keeping the connections open with the previous one", exc)
            return
        old, self.current = self.current, fresh
        server = self.credentials.config.server
        log.info("TLS credentials for %s changed: new connections use them", server)
        if not self._users.get(old):
            self._users.pop(old, None)
            await old.aclose()

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[httpx.AsyncClient]:
        """The client to send one request (or hold one watch) with."""
        creds = self.credentials
        if self._transport is None and (creds.check_files() or self._version != creds.tls_version):
            await self._renew()
        http = self.current
        self._users[http] = self._users.get(http, 0) + 1
        try:
            yield http
        finally:
            # `aclose` may have run meanwhile (a watch still open at shutdown): nothing to count
            left = self._users.get(http, 0) - 1
            if left > 0:
                self._users[http] = left
            else:
                self._users.pop(http, None)
                if http is not self.current:
                    await http.aclose()

    async def aclose(self) -> None:
        """Closes every client, those with requests or watches in flight too (they fail)."""
        for http in [*self._users, self.current]:
            await http.aclose()
        self._users.clear()
