"""``python -m hami_extender --kubeconfig admin.kubeconfig --port 8080`` (add ``--cert-file``,
``--key-file`` and ``--client-ca-file`` to serve kube-scheduler over TLS)"""

from __future__ import annotations

import sys

from hami_common.k8s import ConfigError
from hami_common.serving import CertificateError
from hami_common.settings.main import package_version, run_service

from hami_extender.server import serve
from hami_extender.settings import ExtenderSettings


def main(argv: list[str] | None = None) -> int:
    return run_service(
        ExtenderSettings, "hami-extender", serve, argv,
        config_errors=(ConfigError, CertificateError),
        quiet_loggers=("httpx",),  # one line per API call otherwise
        version=package_version("hami-extender"),
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
