"""What the scheduler allocated to a ResourceClaim, for one driver on one node.

kube-scheduler writes ``status.allocation.devices.results[]``: request, driver, pool, device,
and with consumable capacity a ``shareID`` and ``consumedCapacity`` (every capacity of the
device, requested or defaulted). kubelet sends only the claim's namespace, name and UID, so the
driver reads the claim and checks it is the one kubelet meant and that it is allocated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]


class ClaimError(ValueError):
    """The claim cannot be prepared on this node; the message says why."""


@dataclass(frozen=True)
class AllocatedDevice:
    request: str
    pool: str
    device: str
    share_id: str
    consumed: dict[str, str]
    """``consumedCapacity`` as written (quantities); empty for a device allocated whole."""


def allocated_devices(claim: Json, *, uid: str, driver: str, pool: str) -> list[AllocatedDevice]:
    """The devices of ``driver`` in ``pool`` allocated to ``claim``. Raises `ClaimError` when
    the claim is another object than kubelet's (UID), is not allocated, or has nothing of
    ours in this pool."""
    meta = claim.get("metadata") or {}
    ref = f"{meta.get('namespace')}/{meta.get('name')}"
    if meta.get("uid") != uid:
        raise ClaimError(
            f"claim {ref}: UID {meta.get('uid')} is not the {uid} kubelet asked for "
            "(the claim was deleted and created again)"
        )
    allocation = (claim.get("status") or {}).get("allocation")
    if not allocation:
        raise ClaimError(f"claim {ref} is not allocated")
    results = ((allocation.get("devices") or {}).get("results")) or []
    out: list[AllocatedDevice] = []
    for r in results:
        if r.get("driver") != driver:
            continue
        if r.get("pool") != pool:
            raise ClaimError(
                f"claim {ref}: device {r.get('device')} is allocated from pool "
                f"{r.get('pool')}, not this node's ({pool})"
            )
        consumed = {str(k): str(v) for k, v in (r.get("consumedCapacity") or {}).items()}
        out.append(
            AllocatedDevice(
                request=str(r.get("request", "")),
                pool=str(r["pool"]),
                device=str(r.get("device", "")),
                share_id=str(r.get("shareID") or ""),
                consumed=consumed,
            )
        )
    if not out:
        raise ClaimError(f"claim {ref} has no device of driver {driver}")
    return out
