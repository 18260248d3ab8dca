"""``python -m hami_webhook --cert-file tls.crt --key-file tls.key --port 8443``"""

from __future__ import annotations

import sys

from hami_common.k8s import ConfigError
from hami_common.serving import CertificateError
from hami_common.settings.main import package_version, run_service

from hami_webhook.server import serve
from hami_webhook.settings import WebhookSettings


def main(argv: list[str] | None = None) -> int:
    return run_service(
        WebhookSettings, "hami-webhook", serve, argv,
        config_errors=(CertificateError, ConfigError),
        version=package_version("hami-webhook"),
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
