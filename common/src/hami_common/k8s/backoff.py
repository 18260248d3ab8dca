"""Retry policy of the adapter: capped exponential backoff with full jitter.

Attempt ``n`` (0-based) waits a random time in ``[0, min(cap, base * factor**n)]`` ("full
jitter", so that many clients retrying together spread out). When the server sent
`Retry-After`, the wait is at least that value (still capped by ``max_retry_after``). After
``retries`` failed retries the last error is raised.

What is retried (see `is_retryable`):
- `TooManyRequests` (429) and `ServiceUnavailable` (503) for every verb: the server refused the
  request before acting on it;
- a connection that could not be opened, for every verb: nothing was sent;
- other 5xx and broken connections only for reads (GET, list, watch start), since a write may
  have been applied before the failure.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from hami_common.k8s.errors import (
    ApiError,
    ConnectionFailed,
    ServerError,
    TooManyRequests,
    TransportError,
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff; the defaults wait about 0.2, 0.4, 0.8, 1.6, 3.2 s at most."""

    retries: int = 5
    base: float = 0.2
    factor: float = 2.0
    cap: float = 10.0
    max_retry_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.base < 0 or self.factor < 1 or self.cap < 0:
            raise ValueError(f"invalid backoff {self!r}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt`` (0-based), ignoring Retry-After."""
        # A loop that retries forever reaches attempts whose power overflows a float.
        return float(min(self.cap, self.base * self.factor ** min(attempt, 64)))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before retry ``attempt``: full jitter, raised to `Retry-After` if given."""
        wait = self.rng.uniform(0.0, self.ceiling(attempt))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait

    def delays(self) -> Iterator[float]:
        """The jittered waits of every retry, for callers that retry their own loops."""
        for attempt in range(self.retries):
            yield self.delay(attempt)


NO_RETRY = Backoff(retries=0)


def is_retryable(error: ApiError, method: str) -> bool:
    """Whether a failed call may be retried without risking a duplicate write."""
    if isinstance(error, TooManyRequests | ConnectionFailed):
        return True
    if isinstance(error, ServerError):
        return error.status == 503 or method.upper() in SAFE_METHODS
    if isinstance(error, TransportError):
        return method.upper() in SAFE_METHODS
    return False


# Loops that retry forever (watches, leader election, event writing, node registration): about
# 1, 2, 4, 8, 16, 30, 30... seconds at most between tries.
LOOP_BACKOFF = Backoff(retries=0, base=1.0, cap=30.0)


class Retrier:
    """The consecutive failures of one loop that retries API calls forever.

    Each failure logs one warning line (for an `ApiError`: the request, the server's URL, the
    status and, on 401 and 403, what to check) and returns the wait before the next try, which
    grows with the failures in a row up to the backoff's cap; `succeeded` starts over. A failure
    that is not an `ApiError` (a bug) logs its traceback once per streak, then one line.
    """

    def __init__(self, what: str, log: logging.Logger, backoff: Backoff = LOOP_BACKOFF) -> None:
        self.what = what
        self.log = log
        self.backoff = backoff
        self.failures = 0

    def failed(self, error: BaseException) -> float:
        delay = self.backoff.delay(self.failures, getattr(error, "retry_after", None))
        self.failures += 1
        known = isinstance(error, ApiError)
        self.log.warning(
            "%s failed (%d in a row): %s; retrying in %.1fs",
            self.what,
            self.failures,
            error if known else f"{type(error).__name__}: {error}",
            delay,
            exc_info=None if known or self.failures > 1 else error,
        )
        return delay

    def succeeded(self) -> None:
        self.failures = 0
