"""Serve the monitor: plain HTTP on loopback, or HTTPS with ``--cert-file``/``--key-file``
(reloaded when they change). The listening rule of every hami-rs server holds: any ``--host``
but loopback needs TLS. The kubeconfig and the device driver are opened before the server
starts, so a bad one is one line and an exit status, not a traceback from the lifespan."""

from __future__ import annotations

import uvicorn
from hami_common.serving import ReloadingCertificate, require_off_loopback, run
from hami_common.serving import build_server as _build
from hami_common.settings import SettingsError
from starlette.types import ASGIApp

from hami_monitor.app import create_app
from hami_monitor.settings import MonitorSettings

EXPOSES = "the node's per-container GPU usage (which pods run here, what they use)"


def certificate(settings: MonitorSettings) -> ReloadingCertificate | None:
    cert, key = settings.cert_file, settings.key_file
    if (cert is None) != (key is None):
        raise SettingsError([
            "cert_file and key_file go together: set both --cert-file and --key-file "
            "(HAMI_MONITOR_CERT_FILE / HAMI_MONITOR_KEY_FILE), or neither for plain HTTP"
        ])  # fmt: skip
    missing = [flag for flag, v in (("--cert-file", cert), ("--key-file", key)) if v is None]
    require_off_loopback(settings.host, missing, EXPOSES)
    if cert is None or key is None:
        return None
    return ReloadingCertificate(cert, key)


def build_server(
    settings: MonitorSettings, app: ASGIApp | None = None,
    tls: ReloadingCertificate | None = None,
) -> uvicorn.Server:  # fmt: skip
    return _build(
        app if app is not None else create_app(settings), settings, port=settings.port,
        tls=tls.context if tls is not None else None, keep_alive=75, graceful_shutdown=5,
        log_level=settings.log_level,
    )  # fmt: skip


async def serve(settings: MonitorSettings) -> None:
    """Run until SIGINT/SIGTERM."""
    tls = certificate(settings)
    await run(build_server(settings, tls=tls), tls, settings.cert_reload_seconds)
