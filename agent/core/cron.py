"""A five-field crontab matcher for promotion windows, pure so the planner can test it with a fake clock.

APScheduler parses cron for *triggers*; a window is a different question ("may we promote during this
minute?"), answered here without importing the scheduler into the pure core.
"""

from __future__ import annotations

from datetime import datetime

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")


def _field(text: str, low: int, high: int, what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = int(base)
            end = high if step_text else start
        if step < 1 or not low <= start <= end <= high:
            raise ValueError(f"cron {what} field {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


class CronWindow:
    """``CronWindow("* 2-4 * * 1-5").contains(now)``: true during every minute the expression matches."""

    def __init__(self, expression: str) -> None:
        parts = expression.split()
        if len(parts) != 5:
            raise ValueError(f"cron expression {expression!r} needs 5 fields (minute hour day month weekday)")
        try:
            self.fields = tuple(
                _field(p, lo, hi, name) for p, (lo, hi), name in zip(parts, _RANGES, _NAMES, strict=True)
            )
        except ValueError as err:
            raise ValueError(f"cron expression {expression!r}: {err}") from err
        self.expression = expression
        self._dom_any, self._dow_any = parts[2] == "*", parts[4] == "*"

    def contains(self, when: datetime) -> bool:
        minute, hour, dom, month, dow = self.fields
        if when.minute not in minute or when.hour not in hour or when.month not in month:
            return False
        weekday = (when.weekday() + 1) % 7  # cron counts Sunday as 0; Python counts Monday as 0
        dom_ok, dow_ok = when.day in dom, weekday in dow
        if self._dom_any or self._dow_any:  # crontab(5): when both are restricted, either may match
            return dom_ok and dow_ok
        return dom_ok or dow_ok
