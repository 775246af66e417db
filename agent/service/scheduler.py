"""APScheduler wiring only: one job per model, never overlapping itself (max_instances=1), missed runs
coalesced, first run at once. Each job is one reconcile pass."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from cronsim import CronSim

from agent.infra.config import ScheduleSettings

# How far ahead a cron schedule is walked to find its longest gap: a year covers monthly and yearly
# expressions; the cap bounds the walk for dense ones (a weekday-only */5 shows its weekend gap by run 1440).
_GAP_HORIZON = timedelta(days=366)
_GAP_MAX_RUNS = 2000


class CrontabTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler ships no type information
    """A crontab line read as crontab(5) and ``policy.window`` read it (cronsim: names, 0 and 7 for Sunday),
    in UTC. APScheduler's own ``CronTrigger.from_crontab`` counts weekdays from Monday = 0, so ``1-5``
    would poll Tuesday to Saturday."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        CronSim(expression, datetime.now(UTC))  # fail now, not at the first run

    jitter: float | None = None
    """Seconds of random delay added to each run (BaseTrigger's own jitter)."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        # cronsim yields matches strictly after its start: step back a second so ``now`` itself may fire.
        start = previous_fire_time or now - timedelta(seconds=1)
        fire = next(CronSim(self.expression, start.astimezone(UTC)))
        return self._apply_jitter(fire, self.jitter, now) if self.jitter else fire

    def __str__(self) -> str:
        return f"crontab[{self.expression}]"


def trigger_for(schedule: ScheduleSettings) -> BaseTrigger:
    """The trigger for one model; jitter (a random delay up to it, sub-second too) applies to both kinds."""
    jitter = schedule.jitter.total_seconds() or None
    if schedule.cron:
        trigger = CrontabTrigger(schedule.cron)
        trigger.jitter = jitter
        return trigger
    assert schedule.interval is not None
    return IntervalTrigger(seconds=schedule.interval.total_seconds(), jitter=jitter, timezone="UTC")


def poll_gap_seconds(schedule: ScheduleSettings) -> float:
    """The longest time between two scheduled runs (jitter excluded): the interval, or for a cron schedule
    the widest gap between consecutive runs within a year (feeds ``tfs_agent_poll_interval_seconds``)."""
    if not schedule.cron:
        assert schedule.interval is not None
        return schedule.interval.total_seconds()
    trigger = trigger_for(schedule.model_copy(update={"jitter": timedelta(0)}))  # the runs as scheduled
    start = datetime(2025, 1, 1, tzinfo=UTC)
    previous: datetime | None = None
    widest = 0.0
    when = trigger.get_next_fire_time(None, start)
    for _ in range(_GAP_MAX_RUNS):
        if when is None or when - start > _GAP_HORIZON:
            break
        if previous is not None:
            widest = max(widest, (when - previous).total_seconds())
        previous, when = when, trigger.get_next_fire_time(when, when + timedelta(microseconds=1))
    return widest


class _SkipIsNotNews(logging.Filter):
    """A tick that finds the model's pass still running is skipped by design (max_instances=1, coalesce):
    with a short interval APScheduler would otherwise warn on every tick of a long promotion."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_SKIP_FILTER = _SkipIsNotNews()


def build_scheduler(jobs: dict[str, tuple[ScheduleSettings, Callable[[], object]]]) -> BackgroundScheduler:
    """A scheduler with one job per model; the caller starts and shuts it down."""
    logger = logging.getLogger("apscheduler.scheduler")
    if _SKIP_FILTER not in logger.filters:
        logger.addFilter(_SKIP_FILTER)
    scheduler = BackgroundScheduler(
        timezone="UTC",
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        executors={"default": {"type": "threadpool", "max_workers": max(2, len(jobs))}},
    )
    for name, (schedule, run) in jobs.items():
        scheduler.add_job(
            run,
            trigger_for(schedule),
            id=name,
            name=f"reconcile {name}",
            next_run_time=datetime.now().astimezone(),
        )
    return scheduler
