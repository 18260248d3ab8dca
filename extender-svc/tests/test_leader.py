"""Leader election on a Lease: create, renew, wait out another holder on our own clock, lose a
compare-and-swap, step down before anyone may take over, release on a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx
import pytest
from hami_common.k8s.testing import FakeApiServer
from hami_extender.leader import LeaderElector

LEASE = "/apis/coordination.k8s.io/v1/namespaces/default/leases/hami"


def elector(api: FakeApiServer, who: str, duration: float = 10.0) -> LeaderElector:
    return LeaderElector(api.client(), "hami", "default", who, duration)


def test_the_first_replica_creates_the_lease_and_renews_it(api: FakeApiServer) -> None:
    async def go() -> list[bool]:
        a, b = elector(api, "a"), elector(api, "b")
        return [await a.try_acquire_or_renew(), await b.try_acquire_or_renew(),
                await a.try_acquire_or_renew(), a.is_leader, b.is_leader]  # fmt: skip

    assert asyncio.run(go()) == [True, False, True, True, False]
    spec = api.get(LEASE)["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseTransitions"] == 0
    assert spec["leaseDurationSeconds"] == 10


def test_a_lease_left_unrenewed_for_its_duration_is_taken_over(api: FakeApiServer) -> None:
    async def go() -> list[bool]:
        a, b = elector(api, "a", 0.3), elector(api, "b", 0.3)
        await a.try_acquire_or_renew()
        api.get(LEASE)["spec"]["leaseDurationSeconds"] = 0.3  # the API keeps what it was sent
        seen = [await b.try_acquire_or_renew()]  # first sight: starts b's own clock
        await asyncio.sleep(0.1)
        seen.append(await b.try_acquire_or_renew())  # not yet: 0.1 s of 0.3
        await asyncio.sleep(0.3)
        seen.append(await b.try_acquire_or_renew())  # unchanged for longer than 0.3 s
        seen.append(a.is_leader)  # a stepped down on its own (2/3 of the duration)
        return seen

    assert asyncio.run(go()) == [False, False, True, False]
    spec = api.get(LEASE)["spec"]
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


def test_a_renewal_restarts_the_standbys_clock(api: FakeApiServer) -> None:
    async def go() -> list[bool]:
        a, b = elector(api, "a", 0.3), elector(api, "b", 0.3)
        await a.try_acquire_or_renew()
        api.get(LEASE)["spec"]["leaseDurationSeconds"] = 0.3
        seen = [await b.try_acquire_or_renew()]
        for _ in range(4):
            await asyncio.sleep(0.1)
            await a.try_acquire_or_renew()  # a new resourceVersion each time
            seen.append(await b.try_acquire_or_renew())
        return seen

    assert asyncio.run(go()) == [False] * 5
    assert api.get(LEASE)["spec"]["holderIdentity"] == "a"


def test_losing_the_compare_and_swap_means_not_leading(api: FakeApiServer) -> None:
    async def go() -> tuple[bool, bool]:
        a, b = elector(api, "a", 0.2), elector(api, "b", 0.2)
        await a.try_acquire_or_renew()
        api.get(LEASE)["spec"]["leaseDurationSeconds"] = 0.2
        await b.try_acquire_or_renew()
        await asyncio.sleep(0.3)

        def a_renews_first(request: httpx.Request) -> httpx.Response | None:
            if request.method == "PUT":  # a's renewal lands between b's read and b's write
                api.intercept = None
                api.put(LEASE.rsplit("/", 1)[0], api.get(LEASE))
            return None

        api.intercept = a_renews_first
        return await b.try_acquire_or_renew(), b.is_leader

    assert asyncio.run(go()) == (False, False)
    assert api.get(LEASE)["spec"]["holderIdentity"] == "a"


def test_a_clean_stop_releases_the_lease_for_an_immediate_takeover(api: FakeApiServer) -> None:
    async def go() -> tuple[bool, bool]:
        a, b = elector(api, "a"), elector(api, "b")
        await a.try_acquire_or_renew()
        await a.release()
        started = time.monotonic()
        took = await b.try_acquire_or_renew()
        return took, time.monotonic() - started < 5 and not a.is_leader

    assert asyncio.run(go()) == (True, True)
    assert api.get(LEASE)["spec"]["holderIdentity"] == "b"


def test_a_forbidden_lease_is_one_line_per_round_with_the_rbac_to_grant(
    api: FakeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    def forbid(request: httpx.Request) -> httpx.Response:
        if len(api.requests) >= 4:
            enough.set()
        body = {"kind": "Status", "code": 403, "reason": "Forbidden",
                "message": 'leases.coordination.k8s.io "hami" is forbidden'}  # fmt: skip
        return httpx.Response(403, json=body)

    enough = asyncio.Event()
    api.intercept = forbid

    async def go() -> None:
        task = asyncio.create_task(elector(api, "a", duration=0.2).run())
        await enough.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING, logger="hami_extender.leader"):
        asyncio.run(go())
    lines = [r for r in caplog.records if r.name == "hami_extender.leader"]
    assert len(lines) == len(api.requests)
    for n, record in enumerate(lines, start=1):
        assert record.exc_info is None
        assert record.getMessage().startswith(
            f"lease round failed ({n} in a row): GET https://fake.invalid{LEASE}: HTTP 403 "
            'Forbidden: leases.coordination.k8s.io "hami" is forbidden; check the RBAC rules '
            "that grant this user get leases.coordination.k8s.io; retrying in "
        )
