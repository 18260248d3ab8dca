"""Pair scores: HAMi's weights, NVLinks, and 0 for asymmetric link data."""

from __future__ import annotations

from hami_common.deviceplugin.backend import Link, PhysicalDevice
from hami_plugin_nvidia.scores import link_score, pair_scores


def dev(uuid: str, healthy: bool = True) -> PhysicalDevice:
    return PhysicalDevice(uuid, 0, "A100", 1000, healthy=healthy)


def test_weights() -> None:
    assert link_score(Link("CrossCPU")) == 10
    assert link_score(Link("SameBoard", nvlinks=2)) == 260
    assert link_score(Link("", nvlinks=12)) == 1200
    assert link_score(Link("Unknown")) == 0


def test_symmetric_asymmetric_and_unhealthy() -> None:
    links = {
        ("a", "b"): Link("SingleSwitch", 4),
        ("b", "a"): Link("SingleSwitch", 4),
        ("a", "c"): Link("HostBridge"),
        ("c", "a"): Link("SameCPU"),
    }
    scores, asymmetric = pair_scores([dev("a"), dev("b"), dev("c"), dev("d", False)], links)
    assert dict(scores) == {
        "a": {"b": 450, "c": 0},
        "b": {"a": 450, "c": 0},
        "c": {"a": 0, "b": 0},
    }
    assert asymmetric == [("a", "c")]
