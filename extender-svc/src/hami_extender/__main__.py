"""``python -m hami_extender --kubeconfig admin.kubeconfig --port 8080``"""

from __future__ import annotations

import logging
import os
import sys

import uvloop
from hami_common.k8s import ConfigError
from hami_common.settings import SettingsError

from hami_extender.server import serve
from hami_extender.settings import ExtenderSettings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = ExtenderSettings.load(
            sys.argv[1:] if argv is None else argv, os.environ, prog="hami-extender"
        )
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call otherwise
        uvloop.run(serve(settings))  # libuv event loop: a faster loop than asyncio's own
    except (SettingsError, ConfigError) as exc:
        print(f"hami-extender: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
