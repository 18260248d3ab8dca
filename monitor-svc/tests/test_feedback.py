"""HAMi's priority feedback decisions (node-side reference §2.5), one rule per test."""

from __future__ import annotations

from hami_monitor.feedback import Decision, Seen, decide


def seen(key: str, priority: int, rk: int, switch: int = 1, devs: tuple[str, ...] = ("g",)) -> Seen:
    return Seen(key, priority, rk, switch, devs)


def by_key(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.key: d for d in decisions}


def test_activity_decays_by_one_per_period() -> None:
    d = by_key(decide([seen("a", 1, 2, switch=0)]))["a"]
    assert (d.recent_kernel, d.util_switch, d.held) == (1, None, False)
    d = by_key(decide([seen("a", 1, 1, switch=0)]))["a"]
    assert d.recent_kernel == 0


def test_alone_on_its_device_runs_unthrottled() -> None:
    d = by_key(decide([seen("a", 1, 2, switch=1)]))["a"]
    assert d.util_switch == 0


def test_a_busy_higher_priority_container_holds_a_lower_one_and_limits_it() -> None:
    d = by_key(decide([seen("hi", 0, 2, switch=1), seen("lo", 1, 2, switch=0)]))
    assert (d["lo"].recent_kernel, d["lo"].util_switch, d["lo"].held) == (-1, 1, True)
    assert d["hi"].util_switch == 0
    assert not d["hi"].held  # nothing above it


def test_an_idle_higher_priority_container_holds_nobody() -> None:
    d = by_key(decide([seen("hi", 0, 1), seen("lo", 1, 2)]))  # hi decays to 0: idle
    assert d["lo"].recent_kernel == 1
    assert not d["lo"].held


def test_a_held_container_is_released_when_the_higher_one_went_quiet() -> None:
    d = by_key(decide([seen("hi", 0, 0), seen("lo", 1, -1)]))
    assert d["lo"].recent_kernel == 0
    assert not d["lo"].held


def test_peers_at_one_priority_share_with_the_sm_limit_on() -> None:
    d = by_key(decide([seen("a", 1, 2, switch=0), seen("b", 1, 2, switch=0)]))
    assert d["a"].util_switch == d["b"].util_switch == 1
    assert not d["a"].held
    assert not d["b"].held


def test_other_devices_do_not_interfere() -> None:
    d = by_key(decide([seen("hi", 0, 2, devs=("g1",)), seen("lo", 1, 2, devs=("g2",))]))
    assert not d["lo"].held
    assert d["lo"].util_switch == 0


def test_unchanged_fields_are_not_written() -> None:
    d = by_key(decide([seen("a", 1, 0, switch=0)]))["a"]
    assert (d.recent_kernel, d.util_switch) == (None, None)


def test_a_negative_priority_never_counts_as_active() -> None:
    d = by_key(decide([seen("x", -1, 2), seen("lo", 1, 2)]))
    assert not d["lo"].held
