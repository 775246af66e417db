"""The planner's policies, with plain values and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.core.plan import Action, Observation, Policy, plan

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # a Tuesday


def obs(available: set[int], serving: int | None = None, **kw: object) -> Observation:
    return Observation(available=frozenset(available), serving=serving, **kw)  # type: ignore[arg-type]


def test_first_deployment_takes_highest_version() -> None:
    """With nothing serving, the highest available version is promoted."""
    p = plan(obs({1, 3, 2}), Policy(), NOW)
    assert (p.action, p.version) == (Action.PROMOTE, 3)


def test_newer_ignores_lower_versions() -> None:
    """Policy 'newer' never goes below the serving version."""
    p = plan(obs({1, 2}, serving=3), Policy(versions="newer"), NOW)
    assert p.action is Action.IDLE


def test_latest_follows_bucket_rollback() -> None:
    """Policy 'latest' promotes the highest available version even when it is lower than the serving one."""
    p = plan(obs({1, 2}, serving=3), Policy(versions="latest"), NOW)
    assert (p.action, p.version) == (Action.PROMOTE, 2)


def test_latest_idle_when_serving_is_highest() -> None:
    """Policy 'latest' does nothing when the serving version is the highest."""
    assert plan(obs({1, 3}, serving=3), Policy(versions="latest"), NOW).action is Action.IDLE


def test_quarantined_versions_are_skipped() -> None:
    """A quarantined version is never a candidate; the next lower eligible one is."""
    p = plan(obs({1, 2, 3}, serving=1, quarantined={3: "bad"}), Policy(), NOW)
    assert (p.action, p.version) == (Action.PROMOTE, 2)


def test_only_quarantined_left_reports_them() -> None:
    """When only quarantined versions remain, the reason names them."""
    p = plan(obs({1, 3}, serving=1, quarantined={3: "bad"}), Policy(), NOW)
    assert p.action is Action.IDLE
    assert "quarantined: 3" in p.reason


def test_pinned_policy_waits_for_a_pin() -> None:
    """Policy 'pinned' without a pin does nothing and says how to pin."""
    p = plan(obs({1, 2}), Policy(versions="pinned"), NOW)
    assert p.action is Action.IDLE
    assert "tfs-agent pin" in p.reason


@pytest.mark.parametrize("versions", ["newer", "latest", "pinned"])
def test_pin_overrides_policy_and_goes_down(versions: str) -> None:
    """An operator pin selects that version, even a lower one, under every policy."""
    p = plan(obs({1, 2, 3}, serving=3, pinned=1), Policy(versions=versions), NOW)
    assert (p.action, p.version) == (Action.PROMOTE, 1)


def test_pin_bypasses_window_and_interval() -> None:
    """Operator pins are not held back by time gates."""
    policy = Policy(window="0 3 * * *", min_interval=timedelta(days=1))
    p = plan(obs({1, 2}, serving=2, pinned=1, last_promotion=NOW), policy, NOW)
    assert p.action is Action.PROMOTE


def test_pin_to_quarantined_version_is_refused() -> None:
    """A pin to a quarantined version does nothing and says to clear it."""
    p = plan(obs({1, 2}, serving=1, pinned=2, quarantined={2: "golden mismatch"}), Policy(), NOW)
    assert p.action is Action.IDLE
    assert "clear it" in p.reason


def test_pin_to_missing_version_is_refused() -> None:
    """A pin to a version that is neither complete in the bucket nor on disk does nothing."""
    p = plan(obs({1}, serving=1, pinned=5), Policy(), NOW)
    assert p.action is Action.IDLE
    assert "not complete" in p.reason


def test_window_holds_promotion_outside() -> None:
    """A promotion window that does not match now holds the candidate."""
    p = plan(obs({1, 2}, serving=1), Policy(window="* 2-4 * * *"), NOW)
    assert (p.action, p.version) == (Action.WAIT, 2)
    assert "window" in p.reason


def test_window_allows_promotion_inside() -> None:
    """Inside the window the candidate is promoted."""
    p = plan(obs({1, 2}, serving=1), Policy(window="* 14 * * 2"), NOW)
    assert p.action is Action.PROMOTE


def test_window_never_blocks_first_deployment() -> None:
    """A model with nothing serving is brought up regardless of the window."""
    assert plan(obs({1}), Policy(window="0 3 1 1 *"), NOW).action is Action.PROMOTE


def test_min_interval_holds_until_elapsed() -> None:
    """min_interval holds a candidate until the interval since the last promotion has passed."""
    last = NOW - timedelta(minutes=4)
    p = plan(obs({1, 2}, serving=1, last_promotion=last), Policy(min_interval=timedelta(minutes=5)), NOW)
    assert p.action is Action.WAIT
    assert p.not_before == last + timedelta(minutes=5)
    later = plan(
        obs({1, 2}, serving=1, last_promotion=last),
        Policy(min_interval=timedelta(minutes=5)),
        NOW + timedelta(minutes=1),
    )
    assert later.action is Action.PROMOTE


def test_replace_below_holds_while_serving_performs() -> None:
    """The performance policy keeps a serving version whose metrics are at or above the floor."""
    o = obs({1, 2}, serving=1, serving_metrics={"accuracy": 0.95})
    p = plan(o, Policy(replace_below={"accuracy": 0.9}), NOW)
    assert p.action is Action.WAIT
    assert "accuracy=0.95 (threshold 0.9)" in p.reason


def test_replace_below_promotes_when_serving_degrades() -> None:
    """Once the serving version scores below the floor, the candidate is promoted."""
    o = obs({1, 2}, serving=1, serving_metrics={"accuracy": 0.85})
    assert plan(o, Policy(replace_below={"accuracy": 0.9}), NOW).action is Action.PROMOTE


def test_replace_below_without_measurement_does_not_block() -> None:
    """Missing serving metrics never block an update forever."""
    assert plan(obs({1, 2}, serving=1), Policy(replace_below={"accuracy": 0.9}), NOW).action is Action.PROMOTE


def test_replace_below_error_metrics_are_worse_when_higher() -> None:
    """For mae/rmse the floor is a ceiling: replace once the serving error rises above it."""
    policy = Policy(replace_below={"mae": 0.2})
    fine = obs({1, 2}, serving=1, serving_metrics={"mae": 0.1})
    worse = obs({1, 2}, serving=1, serving_metrics={"mae": 0.3})
    assert plan(fine, policy, NOW).action is Action.WAIT
    assert plan(worse, policy, NOW).action is Action.PROMOTE
