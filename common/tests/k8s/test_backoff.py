import random

import pytest
from hami_common.k8s.backoff import Backoff, is_retryable
from hami_common.k8s.errors import (
    Conflict,
    ConnectionFailed,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
)


def test_ceiling_doubles_until_the_cap() -> None:
    b = Backoff(base=0.5, factor=2, cap=3)
    assert [b.ceiling(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_delay_is_full_jitter_within_the_ceiling() -> None:
    b = Backoff(base=1, factor=2, cap=100, rng=random.Random(7))  # noqa: S311 - jitter, not crypto
    for attempt in range(6):
        waits = [b.delay(attempt) for _ in range(200)]
        assert all(0 <= w <= b.ceiling(attempt) for w in waits)
        assert max(waits) > b.ceiling(attempt) / 2  # jitter spans the range


def test_retry_after_raises_the_wait_but_is_capped() -> None:
    b = Backoff(base=0.1, cap=1, max_retry_after=5, rng=random.Random(1))  # noqa: S311 - jitter, not crypto
    assert b.delay(0, retry_after=3) == 3
    assert b.delay(0, retry_after=60) == 5


def test_delays_yields_one_wait_per_retry() -> None:
    assert len(list(Backoff(retries=4).delays())) == 4


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(factor=0.5)


@pytest.mark.parametrize(
    ("error", "method", "expected"),
    [
        (TooManyRequests("x", status=429), "POST", True),
        (ServerError("x", status=503), "POST", True),
        (ServerError("x", status=500), "GET", True),
        (ServerError("x", status=500), "POST", False),
        (ServerError("x", status=504), "PATCH", False),
        (ConnectionFailed("x"), "POST", True),
        (TransportError("x"), "GET", True),
        (TransportError("x"), "DELETE", False),
        (NotFound("x", status=404), "GET", False),
        (Conflict("x", status=409), "PUT", False),
    ],
)
def test_only_safe_failures_are_retried(error: Exception, method: str, expected: bool) -> None:
    assert is_retryable(error, method) is expected  # type: ignore[arg-type]
