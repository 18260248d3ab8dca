"""The credentials a `KubeClient` sends, kept fresh the way client-go keeps them.

- A ``token`` is sent as it is.
- A ``tokenFile`` (the in-cluster ServiceAccount token is one) is read at the first request,
  then again when the last read is older than ``refresh_interval`` (60 s, client-go's period),
  and once after a 401: never once per request. A failed re-read keeps the last token.
- An ``exec`` plugin is run (by the library's ``ExecProvider``, in a worker thread, so the event
  loop never waits on it) at the first request, again shortly before its ExecCredential's
  ``expirationTimestamp``, and once after a 401. One run serves every request waiting on it.
- An auth-provider (``oidc``) is asked through the library at most every ``refresh_interval``
  (it refreshes an expired id-token itself), in a thread, and forced after a 401.
- The CA and client-certificate files are checked (their size and mtime) every
  ``refresh_interval``; a change, or a new certificate from an exec plugin, bumps
  ``tls_version`` and the client opens new connections with a new TLS context.

A failure is a `CredentialsError`, which is both a `ConfigError` (what is wrong with the
settings) and an `ApiError` (so that loops that retry API calls handle it as one).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hami_common.k8s.config import ClusterConfig, ConfigError, ExecPlugin
from hami_common.k8s.errors import ApiError

log = logging.getLogger(__name__)

# Run an exec plugin again this long before its credential expires.
EXPIRY_LEEWAY = 10.0
STDERR_TAIL = 800


class CredentialsError(ConfigError, ApiError):
    """The credentials could not be read, or the exec plugin failed; the message says how to
    fix it."""

    default_reason = "CredentialsError"

    def __init__(self, message: str) -> None:
        ApiError.__init__(self, message)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ExecCredential:
    """What an exec plugin returned (``status`` of its ExecCredential)."""

    token: str | None
    client_cert: tuple[bytes, bytes] | None
    expires: datetime.datetime | None


def _plugin_error(plugin: ExecPlugin, problem: str) -> CredentialsError:
    hint = f"; {plugin.install_hint}" if plugin.install_hint else ""
    return CredentialsError(
        f"{plugin.source}: user {plugin.user!r}: the exec plugin `{plugin.command}` {problem}{hint}"
    )


def run_exec(plugin: ExecPlugin) -> ExecCredential:
    """Run the plugin (blocking: call it in a thread) and check what it printed."""
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415
    from kubernetes.config.dateutil import parse_rfc3339  # noqa: PLC0415
    from kubernetes.config.exec_provider import ExecProvider  # noqa: PLC0415
    from kubernetes.config.kube_config import ConfigNode  # noqa: PLC0415

    spec = ConfigNode("exec", dict(plugin.spec))
    try:
        status = ExecProvider(
            spec, plugin.base_path, ConfigNode("cluster", dict(plugin.cluster))
        ).run()
    except OSError as exc:
        raise _plugin_error(plugin, f"could not be started: {exc.strerror or exc}") from None
    except ConfigException as exc:
        text = str(exc).strip()
        tail = text if len(text) <= STDERR_TAIL else "..." + text[-STDERR_TAIL:]
        raise _plugin_error(plugin, f"failed: {tail}") from None
    if not isinstance(status, dict):
        raise _plugin_error(plugin, "printed an ExecCredential whose status is not a mapping")
    token = status.get("token") or None
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if not token and not cert:
        raise _plugin_error(
            plugin, "printed an ExecCredential with neither status.token nor "
            "status.clientCertificateData"
        )  # fmt: skip
    if bool(cert) != bool(key):
        raise _plugin_error(plugin, "printed a client certificate without its key, or a key alone")
    expires = None
    if status.get("expirationTimestamp"):
        try:
            expires = parse_rfc3339(status["expirationTimestamp"])
        except (ValueError, TypeError) as exc:
            raise _plugin_error(plugin, f"printed a bad expirationTimestamp: {exc}") from None
    pair = (str(cert).encode(), str(key).encode()) if cert else None
    return ExecCredential(str(token) if token else None, pair, expires)


def read_token_file(path: Path) -> str:
    """One read of a token file (the tests count the calls of this function)."""
    with open(path, encoding="utf-8") as fh:
        return fh.read().strip()


def _files_stamp(config: ClusterConfig) -> tuple[tuple[int, int] | None, ...]:
    stamps: list[tuple[int, int] | None] = []
    for path in (config.ca_file, config.cert_file, config.key_file):
        try:
            st = os.stat(path) if path is not None else None
        except OSError:
            st = None
        stamps.append((st.st_mtime_ns, st.st_size) if st is not None else None)
    return tuple(stamps)


class Credentials:
    """The live credentials of one `ClusterConfig` (see the module docstring)."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        refresh_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._lock = asyncio.Lock()
        self._header = f"Bearer {config.token}" if config.token else None
        self._exec_cert: tuple[bytes, bytes] | None = None
        self.dynamic = (
            config.token_file is not None
            or config.exec_plugin is not None
            or config.token_source is not None
        )
        self._due = -math.inf if self.dynamic else math.inf
        self._failure: tuple[float, CredentialsError] | None = None
        # Bumped whenever what is sent changes (header or exec certificate).
        self.generation = 0
        self.tls_version = 0
        self._stamp = _files_stamp(config)
        self._tls_due = clock() + refresh_interval
        self.exec_runs = 0

    def ssl_context(self) -> Any:
        """The TLS context for new connections (with the exec plugin's certificate, if any)."""
        return self.config.ssl_context(self._exec_cert)

    def check_files(self) -> bool:
        """At most every ``refresh_interval``: whether the CA or client certificate files
        changed on disk (then ``tls_version`` was bumped)."""
        now = self._clock()
        if now < self._tls_due:
            return False
        self._tls_due = now + self.refresh_interval
        stamp = _files_stamp(self.config)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        self.tls_version += 1
        return True

    async def authorization(self) -> tuple[str | None, int]:
        """The ``Authorization`` header to send and its generation (to pass to
        `after_unauthorized`). Refreshes first when due; cheap otherwise."""
        start = self._clock()
        if start < self._due:
            return self._header, self.generation
        async with self._lock:
            if self._failure is not None and self._failure[0] >= start:
                raise self._failure[1]  # the run this request waited on failed
            if self._clock() >= self._due:
                await self._refresh(force=False)
        return self._header, self.generation

    async def after_unauthorized(self, generation: int) -> bool:
        """After a 401 with the credentials of ``generation``: read or run them again, once.
        Returns whether there is something new to retry with."""
        if not self.dynamic:
            return False
        async with self._lock:
            if self.generation != generation:
                return True  # another request already got new credentials
            await self._refresh(force=True)
            return self.generation != generation

    async def _refresh(self, *, force: bool) -> None:
        try:
            header, cert, due = await self._fetch(force)
        except CredentialsError as exc:
            self._failure = (self._clock(), exc)
            raise
        self._failure = None
        self._due = due
        if (header, cert) != (self._header, self._exec_cert):
            self.generation += 1
            if cert != self._exec_cert:
                self.tls_version += 1
            self._header, self._exec_cert = header, cert

    async def _fetch(self, force: bool) -> tuple[str | None, tuple[bytes, bytes] | None, float]:
        cfg = self.config
        next_check = self._clock() + self.refresh_interval
        if cfg.token_source is not None:
            return (
                await asyncio.to_thread(self._ask_provider, cfg.token_source, force),
                None,
                next_check,
            )
        if cfg.token_file is not None:
            return self._read_token(cfg.token_file), None, next_check
        assert cfg.exec_plugin is not None  # noqa: S101 - `dynamic` says one of the three is set
        cred = await asyncio.to_thread(run_exec, cfg.exec_plugin)
        self.exec_runs += 1
        due = math.inf
        if cred.expires is not None:
            left = (cred.expires - datetime.datetime.now(datetime.UTC)).total_seconds()
            due = self._clock() + max(0.0, left - EXPIRY_LEEWAY)
        header = f"Bearer {cred.token}" if cred.token else None
        return header, cred.client_cert, due

    def _read_token(self, path: Path) -> str | None:
        try:
            token = read_token_file(path)
        except OSError as exc:
            problem = f"cannot read the token file {path}: {exc.strerror or exc}"
            if self._header is None:
                raise CredentialsError(f"{self.config.source}: {problem}") from None
            log.warning("%s; keeping the last token", problem)
            return self._header
        if not token:
            if self._header is None:
                raise CredentialsError(f"{self.config.source}: the token file {path} is empty")
            log.warning("the token file %s is empty; keeping the last token", path)
            return self._header
        return f"Bearer {token}"

    def _ask_provider(self, source: Callable[[bool], str | None], force: bool) -> str | None:
        try:
            return source(force)
        except Exception as exc:  # the library's OIDC refresh: HTTP, OAuth and config errors
            raise CredentialsError(
                f"{self.config.source}: the auth-provider could not give a token "
                f"({type(exc).__name__}: {exc}); log in again (e.g. kubelogin) or fix its config"
            ) from None
