"""Serve the app over TLS with uvicorn, reloading the certificate when its files change.

The webhook serves TLS only, so the listening rule (`hami_common.serving.server`) always holds;
it listens on 127.0.0.1 unless ``--host`` says otherwise, like every hami-rs server. The
kubeconfig (when a check needs the API) and the certificate are loaded before the server
starts, so a bad one is one line and exit status 2, not a traceback from the lifespan.
"""

from __future__ import annotations

import logging

import uvicorn
from hami_common.k8s import ConfigError, load_config
from hami_common.serving import ReloadingCertificate, bound_port, run, wait_started
from hami_common.serving import build_server as _build
from hami_common.settings import SettingsError
from hami_common.settings.main import kubeconfig_hint
from starlette.applications import Starlette

from hami_webhook.app import create_app
from hami_webhook.settings import WebhookSettings

__all__ = ["KEEP_ALIVE_SECONDS", "bound_port", "build_server", "run", "serve", "wait_started"]

log = logging.getLogger(__name__)
# The API server's webhook client (Go net/http) keeps idle connections for 90 s and reuses them;
# a server that closes sooner (uvicorn's default is 5 s) races that reuse and the API server
# reports `failed calling webhook ... EOF`. So idle connections stay open well past 90 s.
KEEP_ALIVE_SECONDS = 300


def build_server(
    settings: WebhookSettings, app: Starlette | None = None
) -> tuple[uvicorn.Server, ReloadingCertificate]:
    """A uvicorn server whose TLS context is the reloading one. Not started."""
    if settings.cert_file is None or settings.key_file is None:
        raise SettingsError(
            ["cert_file and key_file are required: the webhook serves TLS only; "
             "set --cert-file and --key-file (or HAMI_WEBHOOK_CERT_FILE / HAMI_WEBHOOK_KEY_FILE)"]
        )  # fmt: skip
    certificate = ReloadingCertificate(settings.cert_file, settings.key_file)
    server = _build(
        app if app is not None else create_app(settings), settings, port=settings.port,
        tls=certificate.context, keep_alive=KEEP_ALIVE_SECONDS, graceful_shutdown=10,
        log_level=settings.log_level,
    )  # fmt: skip
    return server, certificate


def check_kubeconfig(settings: WebhookSettings) -> None:
    """Load the kubeconfig the quota and namespace checks will use, to fail before serving."""
    if not settings.uses_kube_api:
        return
    try:
        load_config(settings.kubeconfig)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}; {kubeconfig_hint(settings.kubeconfig)}; or run without the API: "
            "--no-quota-check --no-namespace-check"
        ) from None


async def serve(settings: WebhookSettings) -> None:
    """Run until SIGINT/SIGTERM; the certificate is checked every ``cert_reload_seconds``."""
    server, certificate = build_server(settings)
    check_kubeconfig(settings)
    await run(server, certificate, settings.cert_reload_seconds)
