"""Promotion windows: "may we promote during this minute?", on the wall clock of a chosen time zone.

The expression is parsed by cronsim (a maintained, pure-Python cron library: names such as ``MON-FRI`` and
``JAN``, ``7`` for Sunday, ``L`` and ``#``), so operators write windows as they write crontabs. Matching is
done here on the local wall-clock minute: ``now`` (an instant) is converted to ``tz`` first, so a window of
``0-59 9-17 * * MON-FRI`` in ``Europe/Berlin`` follows the clock through both DST changes. The tz object is
built by the config layer (zoneinfo reads the tz database; the core does no I/O).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from cronsim import CronSim, CronSimError

_RANGES = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31, L or LW",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT, with L or #",
}
# cronsim needs a start instant to iterate from; a window only uses the parsed fields, never the iteration.
_ANY_START = datetime(2000, 1, 1)


class CronWindow:
    """``CronWindow("* 9-17 * * MON-FRI", tz).contains(now)``: true during every minute it matches."""

    def __init__(self, expression: str, tz: tzinfo = UTC) -> None:
        if len(expression.split()) != 5:
            raise ValueError(
                f"cron expression {expression!r} needs 5 fields (minute hour day-of-month month day-of-week)"
            )
        try:
            self._cron = CronSim(expression, _ANY_START)
        except CronSimError as err:
            raise ValueError(f"cron expression {expression!r}: {_explain(err)}") from err
        self.expression = expression
        self.tz = tz

    def contains(self, when: datetime) -> bool:
        """Whether the minute of ``when`` (naive means UTC) matches, read on the window's wall clock."""
        local = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(self.tz)
        cron = self._cron
        if local.minute not in cron.minutes or local.hour not in cron.hours:
            return False
        return local.month in cron.months and cron.match_day(local.date())


def _explain(err: CronSimError) -> str:
    """cronsim says "Bad minute"; add what the field takes and an example."""
    field = str(err).removeprefix("Bad ")
    allowed = _RANGES.get(field)
    where = f"bad {field} field (takes {allowed})" if allowed else str(err)
    return f"{where}; e.g. '* 9-16 * * MON-FRI'"
