"""The ``python -m`` entry point the HTTP services share: settings from the command line and the
environment, logging, then the server on uvloop; a configuration error is one line on stderr
and exit status 2, never a traceback."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import uvloop

from hami_common.settings.errors import SettingsError
from hami_common.settings.service import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def run_service(
    settings_type: type[S],
    prog: str,
    serve: Callable[[S], Coroutine[Any, Any, None]],
    argv: Sequence[str] | None = None,
    *,
    config_errors: tuple[type[Exception], ...] = (),
    quiet_loggers: Sequence[str] = (),
) -> int:
    """Load ``settings_type`` (CLI ``argv``, default ``sys.argv[1:]``, then ``HAMI_*`` env), set
    up logging (``quiet_loggers`` at WARNING) and run ``serve(settings)`` until it returns.
    `SettingsError` and ``config_errors`` exit 2 with the message."""
    handled: tuple[type[Exception], ...] = (SettingsError, *config_errors)
    try:
        settings = settings_type.load(sys.argv[1:] if argv is None else argv, os.environ, prog=prog)
        logging.basicConfig(
            level=str(getattr(settings, "log_level", "info")).upper(),
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        for name in quiet_loggers:
            logging.getLogger(name).setLevel(logging.WARNING)
        uvloop.run(serve(settings))  # libuv's event loop: faster than asyncio's own
    except handled as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
