"""The long-running mode: start-up config, HTTP endpoint, scheduler; then wait for a stop signal."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent.infra.clock import SystemClock
from agent.infra.logs import event
from agent.pipeline.reconciler import PassResult
from agent.service.app import Agent
from agent.service.http import AgentHttp
from agent.service.notifications import Notifications
from agent.service.scheduler import build_scheduler

log = logging.getLogger("tfs_agent")
ACTIVE_POLL = 2.0
"""Seconds between a fleet model's passes while its release is under way."""


def run_forever(agent: Agent, stop: threading.Event) -> None:
    """Run until ``stop`` is set; then let the running passes end and stop cleanly."""
    if isinstance(agent.clock, SystemClock):
        agent.clock.stop = stop
    settings = agent.settings
    notifications = Notifications(agent)  # a missing pubsub extra fails before anything is written
    agent.prepare()
    scheduler = build_scheduler(
        {m.name: (m.schedule, notifications.wrap(m.name, _job(agent, m.name))) for m in settings.models}
    )
    _fleet_jobs(agent, scheduler)
    http = AgentHttp(
        host=settings.http.host,
        port=settings.http.port,
        registry=agent.registry,
        status=agent.status,
        healthy=agent.healthy,
        ready=agent.readiness,
        admin=_Nudging(agent, scheduler),
        token_file=settings.http.admin_token_file,
        tfserving_live=agent.tfserving_liveness,
    )
    for job in scheduler.get_jobs():
        event(
            log,
            "scheduled",
            model=job.id,
            trigger=str(job.trigger),
            jitter_s=getattr(job.trigger, "jitter", None),
        )
    http.start()
    event(log, "agent started", port=http.port, models=",".join(agent.reconcilers) or "(none)")
    notifications.start(scheduler)  # before the scheduler: it must see the end of the very first pass
    scheduler.start()
    try:
        stop.wait()
    finally:
        event(log, "stopping")
        notifications.stop()
        scheduler.shutdown(wait=True)
        http.stop()
        event(log, "stopped")


def _job(agent: Agent, model: str) -> Callable[[], PassResult]:
    return lambda: agent.reconcile(model)


def _fleet_jobs(agent: Agent, scheduler: BackgroundScheduler) -> None:
    """With a fleet: a heartbeat job per model, and a pass soon after one that left a release under way
    (each fleet turn costs a poll; docs/fleet.md "Polling while a release is under way")."""
    fleet = agent.settings.fleet
    if fleet is None:
        return
    for name, reconciler in agent.reconcilers.items():
        scheduler.add_job(
            reconciler.heartbeat,
            IntervalTrigger(seconds=fleet.heartbeat.total_seconds(), timezone="UTC"),
            id=f"{name}:heartbeat",
            name=f"fleet heartbeat {name}",
            next_run_time=datetime.now().astimezone(),
        )
        job = scheduler.get_job(name)
        scheduler.modify_job(name, func=_busy_job(agent, scheduler, name, job.func))


def _busy_job(
    agent: Agent, scheduler: BackgroundScheduler, model: str, job: Callable[[], object]
) -> Callable[[], object]:
    reconciler = agent.reconcilers[model]
    interval = reconciler.settings.schedule.interval
    soon = min(ACTIVE_POLL, interval.total_seconds()) if interval is not None else ACTIVE_POLL

    def run() -> object:
        result = job()
        if reconciler.fleet_busy():
            later = datetime.now().astimezone() + timedelta(seconds=soon)
            scheduled = scheduler.get_job(model)
            if (
                scheduled is not None
                and scheduled.next_run_time is not None
                and scheduled.next_run_time > later
            ):
                scheduler.modify_job(model, next_run_time=later)
        return result

    return run


class _Nudging:
    """Admin actions that also run the model's pass now instead of at its next scheduled time."""

    def __init__(self, agent: Agent, scheduler: object) -> None:
        self.agent = agent
        self.scheduler = scheduler

    def _nudge(self, model: str) -> None:
        modify = getattr(self.scheduler, "modify_job", None)
        if modify is not None:
            modify(model, next_run_time=datetime.now().astimezone())

    def pin(self, model: str, version: int) -> dict[str, object]:
        result = self.agent.pin(model, version)
        self._nudge(model)
        return result

    def unpin(self, model: str) -> dict[str, object]:
        result = self.agent.unpin(model)
        self._nudge(model)
        return result

    def rollback(self, model: str) -> dict[str, object]:
        return self.agent.rollback(model)

    def clear(self, model: str, version: int) -> dict[str, object]:
        result = self.agent.clear(model, version)
        self._nudge(model)
        return result
