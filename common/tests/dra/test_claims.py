"""Reading a claim's allocation for one driver and pool, and the refusals that name why."""

from __future__ import annotations

import re

import pytest
from hami_common.dra.claims import ClaimError, allocated_devices
from hami_common.dra.testing import allocated_claim


def test_results_of_this_driver_and_pool() -> None:
    claim = allocated_claim(
        "c",
        uid="u",
        driver="d",
        pool="n1",
        devices=[("gpu-0", {"memory": "3000Mi", "cores": "30"}), ("gpu-1", {})],
    )
    claim["status"]["allocation"]["devices"]["results"].append(
        {"request": "x", "driver": "other", "pool": "elsewhere", "device": "nic"}
    )
    got = allocated_devices(claim, uid="u", driver="d", pool="n1")
    assert [(a.device, a.share_id, a.consumed) for a in got] == [
        ("gpu-0", "u-share-0", {"memory": "3000Mi", "cores": "30"}),
        ("gpu-1", "", {}),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["metadata"].update(uid="new"), "UID new is not the u kubelet asked for"),
        (lambda c: c.pop("status"), "claim default/c is not allocated"),
        (
            lambda c: c["status"]["allocation"]["devices"]["results"][0].update(pool="n2"),
            "allocated from pool n2, not this node's (n1)",
        ),
        (
            lambda c: c["status"]["allocation"]["devices"]["results"][0].update(driver="x"),
            "has no device of driver d",
        ),
    ],
)
def test_refusals_name_the_reason(change, message) -> None:  # type: ignore[no-untyped-def]
    claim = allocated_claim("c", uid="u", driver="d", pool="n1", devices=[("gpu-0", {})])
    change(claim)
    with pytest.raises(ClaimError, match=re.escape(message)):
        allocated_devices(claim, uid="u", driver="d", pool="n1")
