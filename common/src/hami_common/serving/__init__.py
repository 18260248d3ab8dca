"""Serving HTTP: the uvicorn server every service runs (read timeouts, the listening rule), and
TLS with certificate reload and an optional client CA."""

from hami_common.serving.protocol import ReadTimeoutProtocol, read_timeout_protocol
from hami_common.serving.server import (
    HttpServerSettings,
    bound_port,
    build_server,
    is_loopback,
    require_off_loopback,
    run,
    wait_started,
)
from hami_common.serving.tls import CertificateError, ReloadingCertificate

__all__ = [
    "CertificateError",
    "HttpServerSettings",
    "ReadTimeoutProtocol",
    "ReloadingCertificate",
    "bound_port",
    "build_server",
    "is_loopback",
    "read_timeout_protocol",
    "require_off_loopback",
    "run",
    "wait_started",
]
