"""Pair scores for topology-aware placement (``hami.io/node-nvidia-score``, HAMi's weights).

Score of a pair = the PCIe P2P level's weight + 100 per NVLink between them. A pair whose two
directions disagree (asymmetric link data) scores 0, as in HAMi.
"""

from __future__ import annotations

from collections.abc import Sequence

from hami_common.deviceplugin.backend import Link, Links, PhysicalDevice

P2P_WEIGHTS = {
    "CrossCPU": 10,
    "SameCPU": 20,
    "HostBridge": 30,
    "MultiSwitch": 40,
    "SingleSwitch": 50,
    "SameBoard": 60,
}
NVLINK_WEIGHT = 100


def link_score(link: Link) -> int:
    return P2P_WEIGHTS.get(link.p2p, 0) + NVLINK_WEIGHT * max(0, min(link.nvlinks, 18))


def pair_scores(
    devices: Sequence[PhysicalDevice], links: Links
) -> tuple[list[tuple[str, dict[str, int]]], list[tuple[str, str]]]:
    """The scores of every healthy pair, and the asymmetric pairs found."""
    healthy = [d.uuid for d in devices if d.healthy]
    asymmetric: list[tuple[str, str]] = []
    out: list[tuple[str, dict[str, int]]] = []
    for a in healthy:
        row: dict[str, int] = {}
        for b in healthy:
            if a == b:
                continue
            ab, ba = links.get((a, b), Link()), links.get((b, a), Link())
            if ab != ba:
                row[b] = 0
                if a < b:
                    asymmetric.append((a, b))
            else:
                row[b] = link_score(ab)
        out.append((a, row))
    return out, asymmetric
