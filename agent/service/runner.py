"""The long-running mode: start-up config, HTTP endpoint, scheduler; then wait for a stop signal."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from agent.infra.clock import SystemClock
from agent.infra.logs import event
from agent.pipeline.reconciler import PassResult
from agent.service.app import Agent
from agent.service.http import AgentHttp
from agent.service.notifications import Notifications
from agent.service.scheduler import build_scheduler

log = logging.getLogger("tfs_agent")


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
