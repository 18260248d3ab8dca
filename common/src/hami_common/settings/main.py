"""The ``python -m`` entry point every service shares (the webhook, the extender, the device
plugins): settings from the command line and the environment, ``--help`` and ``--version``,
logging, then the service on uvloop; a configuration error is one line on stderr per problem and
exit status 2, a start-up failure exit status 1, never a traceback. A service loads everything
it can fail on (kubeconfig, certificates, device config) in ``serve`` before its server starts,
so that such an error reaches here rather than uvicorn's lifespan."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from hami_common.settings.errors import SettingsError
from hami_common.settings.service import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def kubeconfig_hint(given: Path | None, environ: Mapping[str, str] | None = None) -> str:
    """What to do about a kubeconfig that did not load, by where it came from: the file that
    ``--kubeconfig`` named, the one ``KUBECONFIG`` named, the in-cluster service account, or
    none of these (then ``~/.kube/config`` was tried)."""
    env = os.environ if environ is None else environ
    if given is not None:
        return "fix the file that --kubeconfig names, or name another"
    if env.get("KUBECONFIG"):
        return "fix the file that KUBECONFIG names, or set --kubeconfig"
    if env.get("KUBERNETES_SERVICE_HOST"):
        return "mount the pod's service account token, or set --kubeconfig"
    return "set --kubeconfig (or KUBECONFIG), or run in a pod with a service account"


def run_service(
    settings_type: type[S],
    prog: str,
    serve: Callable[[S], Coroutine[Any, Any, None]],
    argv: Sequence[str] | None = None,
    *,
    config_errors: tuple[type[Exception], ...] = (),
    quiet_loggers: Sequence[str] = (),
    version: str | None = None,
    environ: Mapping[str, str] | None = None,
    startup_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Load ``settings_type`` (CLI ``argv``, default ``sys.argv[1:]``, then ``HAMI_*`` from
    `environ`, default ``os.environ``), set up logging (``quiet_loggers`` at WARNING) and run
    ``serve(settings)`` until it returns. `SettingsError` (one line per problem) and
    ``config_errors`` exit 2 with the message; ``startup_errors`` (what the service could not
    start with: a device driver, a backend) exit 1 with it. With `version`, ``--version`` prints
    ``<prog> <version>``."""
    handled: tuple[type[Exception], ...] = (SettingsError, *config_errors)
    try:
        settings = settings_type.load(
            sys.argv[1:] if argv is None else argv,
            os.environ if environ is None else environ,
            prog=prog,
            version=version,
        )
        logging.basicConfig(
            level=str(getattr(settings, "log_level", "info")).upper(),
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        for name in quiet_loggers:
            logging.getLogger(name).setLevel(logging.WARNING)
        uvloop.run(serve(settings))  # libuv's event loop: faster than asyncio's own
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"{prog}: invalid setting {problem}", file=sys.stderr)
        return 2
    except handled as exc:  # one line, even for a message that quotes a YAML parser's
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"{prog}: {text}", file=sys.stderr)
        return 2
    except startup_errors as exc:
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def package_version(distribution: str) -> str:
    """The installed version of a distribution (for ``--version``), or ``unknown``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
