"""``python -m hami_monitor --node-name "$NODE_NAME"`` (``--help`` lists every flag)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from hami_common.k8s import ConfigError
from hami_common.serving import CertificateError
from hami_common.settings.main import package_version, run_service

from hami_monitor.devices import SourceError
from hami_monitor.server import serve
from hami_monitor.settings import MonitorSettings


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    if "NODE_NAME" in env and "HAMI_MONITOR_NODE_NAME" not in env:
        env["HAMI_MONITOR_NODE_NAME"] = env["NODE_NAME"]  # HAMi's variable
    return run_service(
        MonitorSettings, "hami-monitor", serve, argv,
        config_errors=(ConfigError, CertificateError), startup_errors=(SourceError,),
        quiet_loggers=("httpx",), version=package_version("hami-monitor"), environ=env,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
