"""``python -m hami_webhook --cert-file tls.crt --key-file tls.key --port 8443``"""

from __future__ import annotations

import logging
import os
import sys

import uvloop
from hami_common.settings import SettingsError

from hami_webhook.server import serve
from hami_webhook.settings import WebhookSettings
from hami_webhook.tls import CertificateError


def main(argv: list[str] | None = None) -> int:
    try:
        settings = WebhookSettings.load(
            sys.argv[1:] if argv is None else argv, os.environ, prog="hami-webhook"
        )
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        uvloop.run(serve(settings))  # libuv event loop: a faster loop than asyncio's own
    except (SettingsError, CertificateError) as exc:
        print(f"hami-webhook: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
