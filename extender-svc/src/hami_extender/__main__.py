"""``python -m hami_extender --kubeconfig admin.kubeconfig --port 8080``"""

from __future__ import annotations

import sys

from hami_common.k8s import ConfigError
from hami_common.settings.main import package_version, run_service

from hami_extender.server import serve
from hami_extender.settings import ExtenderSettings


def main(argv: list[str] | None = None) -> int:
    return run_service(
        ExtenderSettings, "hami-extender", serve, argv,
        config_errors=(ConfigError,), quiet_loggers=("httpx",),  # one line per API call otherwise
        version=package_version("hami-extender"),
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
