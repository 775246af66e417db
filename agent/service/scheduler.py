"""APScheduler wiring only: one job per model, never overlapping itself (max_instances=1), missed runs
coalesced, first run at once. Each job is one reconcile pass."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from agent.infra.config import ScheduleSettings


def trigger_for(schedule: ScheduleSettings) -> BaseTrigger:
    if schedule.cron:
        return CronTrigger.from_crontab(schedule.cron, timezone="UTC")
    assert schedule.interval is not None
    jitter = int(schedule.jitter.total_seconds()) or None
    return IntervalTrigger(seconds=schedule.interval.total_seconds(), jitter=jitter, timezone="UTC")


def build_scheduler(jobs: dict[str, tuple[ScheduleSettings, Callable[[], object]]]) -> BackgroundScheduler:
    """A scheduler with one job per model; the caller starts and shuts it down."""
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
