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
