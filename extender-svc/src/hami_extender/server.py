"""Serve the app with uvicorn: plain HTTP on loopback (kube-scheduler beside it), or HTTPS with
``--cert-file``/``--key-file`` (reloaded when they change) and kube-scheduler's client
certificate required on the verbs with ``--client-ca-file``. ``/metrics`` is also served alone
on ``--metrics-port`` (HAMi's scheduler metrics port, 9395), same host and TLS.

The listening rule of every hami-rs server (`hami_common.serving.server`): 127.0.0.1 by default;
any other ``--host`` needs all three TLS flags, or start-up refuses with one line that names
them. The kubeconfig, the certificates and the device config are all loaded before the server
starts, so a bad one is one line and exit status 2 (see `hami_common.settings.main`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from hami_common.serving import ReloadingCertificate, require_off_loopback, run
from hami_common.serving import build_server as _build
from hami_common.settings import SettingsError

from hami_extender.app import ExtenderApp, create_app
from hami_extender.settings import ExtenderSettings

# kube-scheduler's extender client (Go net/http) reuses idle connections for up to 90 s; closing
# them sooner (uvicorn's default is 5 s) races that reuse and fails a filter or bind with EOF.
KEEP_ALIVE_SECONDS = 300
EXPOSES = "/filter and /bind (which reserve devices and bind any pod) to the network"


def certificate(settings: ExtenderSettings) -> ReloadingCertificate | None:
    """The serving certificate (None: plain HTTP), after the TLS flags and the listening rule
    are checked. Raises `SettingsError` or `CertificateError`."""
    cert, key, ca = settings.cert_file, settings.key_file, settings.client_ca_file
    if (cert is None) != (key is None):
        raise SettingsError([
            "cert_file and key_file go together: set both --cert-file and --key-file "
            "(HAMI_EXTENDER_CERT_FILE / HAMI_EXTENDER_KEY_FILE), or neither for plain HTTP"
        ])  # fmt: skip
    if ca is not None and cert is None:
        raise SettingsError([
            "client_ca_file (--client-ca-file) needs TLS: set --cert-file and --key-file too"
        ])  # fmt: skip
    missing = [flag for flag, value in (("--cert-file", cert), ("--key-file", key),
                                        ("--client-ca-file", ca)) if value is None]  # fmt: skip
    require_off_loopback(settings.host, missing, EXPOSES)
    if cert is None or key is None:
        return None
    return ReloadingCertificate(cert, key, ca)


def build_server(
    settings: ExtenderSettings,
    app: ExtenderApp | None = None,
    tls: ReloadingCertificate | None = None,
) -> uvicorn.Server:
    """A uvicorn server for the app (built from the settings unless given: then the kubeconfig
    is loaded now, and a `ConfigError` raised here). Not started."""
    return _build(
        app if app is not None else create_app(settings), settings, port=settings.port,
        tls=tls.context if tls is not None else None, keep_alive=KEEP_ALIVE_SECONDS,
        graceful_shutdown=5, log_level=settings.log_level,
    )  # fmt: skip


class _Companion(uvicorn.Server):
    """A second server in the same process: the main server owns the signals, and this one
    stops when the main one does."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def metrics_server(
    settings: ExtenderSettings, app: ExtenderApp, tls: ReloadingCertificate | None
) -> uvicorn.Server | None:
    """``/metrics`` alone on ``--metrics-port`` (HAMi's 9395), on the same host and TLS as the
    main port, without the verbs' client certificate; None with ``--metrics-port -1``."""
    if settings.metrics_port < 0:
        return None
    server = _build(
        app.metrics_app, settings, port=settings.metrics_port,
        tls=tls.context if tls is not None else None, keep_alive=KEEP_ALIVE_SECONDS,
        graceful_shutdown=2, log_level=settings.log_level,
    )  # fmt: skip
    return _Companion(server.config)


async def serve(settings: ExtenderSettings) -> None:
    """Run until SIGINT/SIGTERM; the certificate is checked every ``cert_reload_seconds``."""
    tls = certificate(settings)
    app = create_app(settings)
    server = build_server(settings, app, tls=tls)
    metrics = metrics_server(settings, app, tls)
    companion = asyncio.create_task(metrics.serve()) if metrics is not None else None
    try:
        await run(server, tls, settings.cert_reload_seconds)
    finally:
        if metrics is not None and companion is not None:
            metrics.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await companion
