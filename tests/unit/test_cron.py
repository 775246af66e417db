"""Promotion windows: five-field cron matching."""

from __future__ import annotations

from datetime import datetime

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
    ],
)
def test_contains(expr: str, when: datetime, inside: bool) -> None:
    """A window matches exactly the minutes its fields select."""
    assert CronWindow(expr).contains(when) is inside


@pytest.mark.parametrize(
    "expr", ["* * *", "61 * * * *", "* 24 * * *", "5-1 * * * *", "*/0 * * * *", "x * * * *"]
)
def test_invalid_expressions_name_the_problem(expr: str) -> None:
    """A malformed window is rejected with the expression in the message."""
    with pytest.raises(ValueError, match="cron"):
        CronWindow(expr)
