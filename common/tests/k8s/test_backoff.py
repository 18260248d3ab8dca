import logging
import random

import pytest
from hami_common.k8s.backoff import Backoff, Retrier, is_retryable
from hami_common.k8s.errors import (
    Conflict,
    ConnectionFailed,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
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


def test_a_loop_that_retries_forever_never_overflows_the_ceiling() -> None:
    b = Backoff(base=1.0, cap=30.0)
    assert b.ceiling(2000) == 30.0  # 2.0**2000 alone does not fit a float


def test_retrier_logs_one_line_per_failure_and_waits_longer_up_to_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.retrier")
    rng = random.Random(3)  # noqa: S311 - jitter, not crypto
    retry = Retrier("pod watch", log, Backoff(base=1.0, cap=8.0, rng=rng))
    refused = Unauthorized("Unauthorized", status=401).at("GET", "https://k:6443/api/v1/pods")
    with caplog.at_level(logging.WARNING, logger="test.retrier"):
        delays = [retry.failed(refused) for _ in range(6)]
        retry.succeeded()
        after = retry.failed(refused)
    # Full jitter under a ceiling that doubles to the cap: 1, 2, 4, 8, 8, 8, then 1 again.
    assert all(0 <= d <= c for d, c in zip(delays, [1, 2, 4, 8, 8, 8], strict=True))
    assert 0 <= after <= 1
    assert len(caplog.records) == 7
    first = caplog.records[0]
    assert first.exc_info is None
    assert first.getMessage() == (
        "pod watch failed (1 in a row): GET https://k:6443/api/v1/pods: HTTP 401 Unauthorized: "
        "Unauthorized; the API server refused our credentials: check the kubeconfig user (its "
        "token, client certificate or exec plugin) or the ServiceAccount token; retrying in "
        f"{delays[0]:.1f}s"
    )
    assert caplog.records[5].getMessage().startswith("pod watch failed (6 in a row): GET")
    assert caplog.records[6].getMessage().startswith("pod watch failed (1 in a row): GET")


def test_retrier_shows_a_bug_s_traceback_once_per_streak(caplog: pytest.LogCaptureFixture) -> None:
    retry = Retrier("node watch", logging.getLogger("test.retrier"), Backoff(base=0.0))
    with caplog.at_level(logging.WARNING, logger="test.retrier"):
        for _ in range(3):
            retry.failed(KeyError("items"))
    assert [r.exc_info is not None for r in caplog.records] == [True, False, False]
    assert caplog.records[2].getMessage() == (
        "node watch failed (3 in a row): KeyError: 'items'; retrying in 0.0s"
    )
