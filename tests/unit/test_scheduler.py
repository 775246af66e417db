"""The APScheduler wiring: triggers get the configured jitter to the millisecond, cron gaps are measured,
and a cron schedule reads weekdays as crontab(5) does (and as policy.window does)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.infra.config import ScheduleSettings
from agent.service.scheduler import poll_gap_seconds, trigger_for


@pytest.mark.parametrize(("jitter", "seconds"), [("500ms", 0.5), ("1500ms", 1.5), ("0s", None)])
def test_trigger_keeps_sub_second_jitter(jitter: str, seconds: float | None) -> None:
    """500ms is half a second of jitter, not none; 1500ms is 1.5 s, not 1 s."""
    for schedule in (
        ScheduleSettings.model_validate({"interval": "1s", "jitter": jitter}),
        ScheduleSettings.model_validate({"cron": "* * * * *", "jitter": jitter}),
    ):
        assert trigger_for(schedule).jitter == seconds


def test_interval_runs_spread_over_the_jitter() -> None:
    """Fire times of a 1 s interval with 500ms jitter fall between 1 s and 1.5 s after the previous one."""
    trigger = trigger_for(ScheduleSettings.model_validate({"interval": "1s", "jitter": "500ms"}))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    offsets = []
    for _ in range(200):
        fire = trigger.get_next_fire_time(start, start)
        offsets.append((fire - start).total_seconds() - 1.0)
    assert min(offsets) >= 0
    assert max(offsets) <= 0.5
    assert max(offsets) - min(offsets) > 0.1  # spread, not a constant offset


@pytest.mark.parametrize(
    ("cron", "gap"),
    [
        ("*/5 * * * *", timedelta(minutes=5)),
        ("0 3 * * *", timedelta(days=1)),
        ("* 2-4 * * *", timedelta(hours=21, minutes=1)),
        ("0 0 1 * *", timedelta(days=31)),
    ],
)
def test_cron_poll_gap_is_the_widest_gap(cron: str, gap: timedelta) -> None:
    """A cron schedule's poll interval is the longest time between two consecutive runs."""
    assert poll_gap_seconds(ScheduleSettings.model_validate({"cron": cron})) == gap.total_seconds()


def test_interval_poll_gap_is_the_interval() -> None:
    """An interval schedule's poll interval is the interval itself (jitter excluded)."""
    schedule = ScheduleSettings.model_validate({"interval": "30s", "jitter": "5s"})
    assert poll_gap_seconds(schedule) == 30.0


SUNDAY_NOON = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def next_run(cron: str, now: datetime = SUNDAY_NOON) -> datetime:
    trigger = trigger_for(ScheduleSettings.model_validate({"cron": cron}))
    fire: datetime = trigger.get_next_fire_time(None, now)
    return fire


def test_weekday_numbers_count_from_sunday() -> None:
    """``1`` is Monday (APScheduler's own from_crontab would make it Tuesday); ``7`` is Sunday."""
    assert next_run("0 6 * * 1").strftime("%A %H:%M") == "Monday 06:00"
    assert next_run("0 13 * * 7") == datetime(2026, 11, 29, 13, 0, tzinfo=UTC)


def test_names_and_the_current_minute() -> None:
    """Names work; a run due this very minute fires now, then the next match follows the previous one."""
    assert next_run("0 6 * * MON-FRI").strftime("%A") == "Monday"
    assert next_run("0 12 * * SUN") == SUNDAY_NOON
    trigger = trigger_for(ScheduleSettings.model_validate({"cron": "*/15 * * * *"}))
    assert trigger.get_next_fire_time(SUNDAY_NOON, SUNDAY_NOON) == datetime(2026, 11, 29, 12, 15, tzinfo=UTC)
