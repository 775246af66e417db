"""The planner's policies, with plain values and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.core.evidence import Evidence, LiveFloor, LiveReading, Score
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


def scored(metrics: dict[str, float], generation: str = "17", age: float = 180.0) -> Evidence:
    """Evidence of serving version 1 scored ``age`` seconds before NOW on golden ``generation``."""
    score = Score(1, metrics, generation, NOW.timestamp() - age)
    return Evidence(score=score, golden_generation="17")


def test_replace_below_holds_while_serving_performs() -> None:
    """The performance policy keeps a serving version whose latest score is at or above the floor, and
    says so with the numbers, the golden generation and the score's age."""
    o = obs({1, 2}, serving=1, evidence=scored({"accuracy": 0.85}))
    p = plan(o, Policy(replace_below={"accuracy": 0.8}), NOW)
    assert (p.action, p.version) == (Action.WAIT, 2)
    assert p.reason == (
        "serving version still performs: serving accuracy 0.85 ≥ 0.8 on golden generation 17 scored 3 min ago"
    )


def test_replace_below_promotes_when_serving_degrades() -> None:
    """Once the serving version's latest score falls below the floor (85 % → 78 %, floor 80 %),
    the candidate is promoted and the plan says why."""
    o = obs({1, 2}, serving=1, evidence=scored({"accuracy": 0.78}))
    p = plan(o, Policy(replace_below={"accuracy": 0.8}), NOW)
    assert p.action is Action.PROMOTE
    assert "serving accuracy 0.78 < 0.8 on golden generation 17" in p.reason


def test_replace_below_holds_a_score_on_other_golden_data() -> None:
    """A score on an older golden generation is not evidence about the data the candidate is scored on."""
    o = obs({1, 2}, serving=1, evidence=scored({"accuracy": 0.5}, generation="16"))
    p = plan(o, Policy(replace_below={"accuracy": 0.8}), NOW)
    assert p.action is Action.WAIT
    assert "not scored on golden generation 17" in p.reason


def test_replace_below_without_a_score_holds() -> None:
    """No score of the serving version at all is no evidence that it degraded."""
    p = plan(obs({1, 2}, serving=1), Policy(replace_below={"accuracy": 0.9}), NOW)
    assert p.action is Action.WAIT
    assert "no golden score" in p.reason


def test_replace_below_unmeasurable_metric_does_not_block() -> None:
    """A metric the golden file cannot measure (no labels) never holds a version forever."""
    o = obs({1, 2}, serving=1, evidence=scored({}))
    assert plan(o, Policy(replace_below={"accuracy": 0.9}), NOW).action is Action.PROMOTE


def test_replace_below_error_metrics_are_worse_when_higher() -> None:
    """For mae/rmse the floor is a ceiling: replace once the serving error rises above it."""
    policy = Policy(replace_below={"mae": 0.5})
    fine = plan(obs({1, 2}, serving=1, evidence=scored({"mae": 0.02})), policy, NOW)
    worse = plan(obs({1, 2}, serving=1, evidence=scored({"mae": 1.0})), policy, NOW)
    assert fine.action is Action.WAIT
    assert "serving mae 0.02 ≤ 0.5 on golden generation 17 scored 3 min ago" in fine.reason
    assert worse.action is Action.PROMOTE
    assert "mae 1 > 0.5" in worse.reason


LIVE = LiveFloor('avg_over_time(model_online_accuracy{model="m"}[1h])', below=0.8, name="online accuracy")


@pytest.mark.parametrize(
    ("reading", "action", "text"),
    [
        (LiveReading(0.83, 0.0), Action.WAIT, "online accuracy 0.83 ≥ 0.8 (query avg_over_time("),
        (LiveReading(0.78, 0.0), Action.PROMOTE, "online accuracy 0.78 < 0.8 (query avg_over_time("),
        (LiveReading(None, 0.0), Action.WAIT, "online accuracy has no data, holding"),
        (LiveReading(None, 0.0, "Prometheus at http://p is unreachable"), Action.WAIT, "is unreachable"),
        (None, Action.WAIT, "not read yet"),
    ],
)
def test_live_floor(reading: LiveReading | None, action: Action, text: str) -> None:
    """A live metric replaces the serving version only once it crosses the floor; no data or an error
    holds the candidate and says why."""
    p = plan(obs({1, 2}, serving=1, evidence=Evidence(live=reading)), Policy(replace_live=LIVE), NOW)
    assert p.action is action
    assert text in p.reason


def test_live_floor_above_is_a_ceiling() -> None:
    """``above:`` is for error-like metrics: replace once the value rises above it."""
    floor = LiveFloor("rate(errors[5m])", above=0.05, name="error rate")
    ok = plan(
        obs({1, 2}, serving=1, evidence=Evidence(live=LiveReading(0.01, 0.0))),
        Policy(replace_live=floor),
        NOW,
    )
    bad = plan(
        obs({1, 2}, serving=1, evidence=Evidence(live=LiveReading(0.2, 0.0))), Policy(replace_live=floor), NOW
    )
    assert (ok.action, bad.action) == (Action.WAIT, Action.PROMOTE)
    assert "error rate 0.01 ≤ 0.05" in ok.reason


def test_window_is_read_in_its_time_zone() -> None:
    """A business-hours window in Europe/Berlin: 14:30 UTC on a November Tuesday is 15:30 there (inside),
    08:30 UTC in July is 10:30 (CEST, inside), 16:30 UTC in July is 18:30 (outside)."""
    berlin = ZoneInfo("Europe/Berlin")
    policy = Policy(window="* 9-17 * * MON-FRI", window_tz=berlin)
    july = datetime(2026, 7, 7, 8, 30, tzinfo=UTC)
    assert plan(obs({1, 2}, serving=1), policy, NOW).action is Action.PROMOTE
    assert plan(obs({1, 2}, serving=1), policy, july).action is Action.PROMOTE
    late = plan(obs({1, 2}, serving=1), policy, july + timedelta(hours=10))
    assert late.action is Action.WAIT
    assert "(Europe/Berlin)" in late.reason
