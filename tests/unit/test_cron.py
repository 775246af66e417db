"""Promotion windows: cron expressions as people write them (names, 7 for Sunday), in a time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from agent.core.cron import CronWindow


@pytest.mark.parametrize(
    ("expr", "when", "inside"),
    [
        ("* * * * *", datetime(2026, 1, 1, 0, 0), True),
        ("*/15 * * * *", datetime(2026, 1, 1, 0, 45), True),
        ("*/15 * * * *", datetime(2026, 1, 1, 0, 46), False),
        ("0 2-4 * * *", datetime(2026, 1, 1, 3, 0), True),
        ("0 2-4 * * *", datetime(2026, 1, 1, 5, 0), False),
        ("* * * * 1-5", datetime(2026, 11, 28, 12, 0), False),  # Saturday
        ("* * * * 0", datetime(2026, 11, 29, 12, 0), True),  # Sunday is 0
        ("* * 1 * 1", datetime(2026, 11, 2, 12, 0), True),  # Monday: either day field may match
        ("* * 1,15 * *", datetime(2026, 11, 15, 12, 0), True),
        ("30 9 * 6-8 *", datetime(2026, 7, 1, 9, 30), True),
        ("* * * * MON-FRI", datetime(2026, 11, 27, 12, 0), True),  # Friday
        ("* * * * MON-FRI", datetime(2026, 11, 28, 12, 0), False),  # Saturday
        ("* * * * 7", datetime(2026, 11, 29, 12, 0), True),  # 7 is Sunday too
        ("* * * JAN,DEC *", datetime(2026, 12, 1, 12, 0), True),
        ("* * * JAN *", datetime(2026, 12, 1, 12, 0), False),
        ("* * L * *", datetime(2026, 2, 28, 12, 0), True),  # last day of the month
    ],
)
def test_contains(expr: str, when: datetime, inside: bool) -> None:
    """A window matches exactly the minutes its fields select."""
    assert CronWindow(expr).contains(when) is inside


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (datetime(2026, 1, 5, 7, 59, tzinfo=UTC), False),  # 08:59 CET, Monday
        (datetime(2026, 1, 5, 8, 0, tzinfo=UTC), True),  # 09:00 CET
        (datetime(2026, 7, 6, 7, 0, tzinfo=UTC), True),  # 09:00 CEST: the same wall clock an hour earlier
        (datetime(2026, 7, 6, 15, 0, tzinfo=UTC), False),  # 17:00 CEST
        (datetime(2026, 3, 29, 8, 0, tzinfo=UTC), False),  # Sunday, the DST change day
        (datetime(2026, 3, 30, 7, 0, tzinfo=UTC), True),  # Monday after: 09:00 CEST
        (datetime(2026, 10, 26, 8, 0, tzinfo=UTC), True),  # Monday after the change back: 09:00 CET
        (datetime(2026, 10, 26, 7, 0, tzinfo=UTC), False),  # 08:00 CET
    ],
)
def test_window_follows_the_wall_clock_of_its_time_zone(when: datetime, inside: bool) -> None:
    """Business hours in Europe/Berlin stay 09:00-16:59 local across both DST changes."""
    assert CronWindow("* 9-16 * * MON-FRI", BERLIN).contains(when) is inside


def test_repeated_hour_of_the_fall_change_matches_both_times() -> None:
    """02:30 happens twice in Berlin on 25 Oct 2026 (CEST, then CET): a 02:xx window holds both."""
    window = CronWindow("* 2 * * *", BERLIN)
    assert window.contains(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 02:30 CEST
    assert window.contains(datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 02:30 CET
    assert not window.contains(datetime(2026, 10, 25, 2, 30, tzinfo=UTC))  # 03:30 CET


@pytest.mark.parametrize(
    "expr", ["* * *", "61 * * * *", "* 24 * * *", "5-1 * * * *", "*/0 * * * *", "x * * * *"]
)
def test_invalid_expressions_name_the_problem(expr: str) -> None:
    """A malformed window is rejected with the expression in the message."""
    with pytest.raises(ValueError, match="cron"):
        CronWindow(expr)
