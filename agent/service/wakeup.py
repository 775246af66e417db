"""Run a model's scheduled pass early: at once for an event, later for a retry or a quiet timer.

Through the scheduler's own job (``modify_job(next_run_time=…)``), so a woken pass holds the same
max_instances=1 lock as a scheduled one and the schedule itself carries on. A wake while the pass runs is
remembered and fired when it ends (that pass may have listed the bucket before the event's object existed);
the scheduler's own "max instances reached" drop counts as such a wake too. A woken pass that fails
transiently is retried with backoff instead of waiting for the next scheduled poll.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.jobstores.base import JobLookupError

from agent.adapters.notify.pubsub import backoff
from agent.pipeline.reconciler import Outcome, PassResult

Observe = Callable[[str, float], None]
"""(model, seconds from the event to the start of the pass it woke)."""
FollowUp = Callable[[str], float | None]
"""Epoch seconds at which the model's pass should run again by itself (a quiet timer), or None."""


@dataclass
class _Model:
    running: bool = False
    pending: bool = False
    due: bool = False  # moved to "now" and not started yet: that pass will see what a new wake announces
    event_at: float | None = None  # the oldest event not yet served by a pass start
    woken: bool = False  # this run was asked for by an event (or is a retry of such a run)
    failures: int = 0


class Wakeups:
    """Wake-ups for the models in ``models``; ``wrap`` their jobs, then ``attach`` the scheduler."""

    def __init__(
        self,
        models: set[str],
        *,
        observe: Observe,
        follow_up: FollowUp,
        now: Callable[[], float] = time.time,
        retry: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        """``retry``: the first and the longest delay (seconds) before re-running a woken pass that failed."""
        self._models = {name: _Model() for name in models}
        self._observe, self._follow_up, self._now, self._retry = observe, follow_up, now, retry
        self._lock = threading.Lock()
        self._scheduler: Any = None

    def wrap(self, model: str, run: Callable[[], PassResult]) -> Callable[[], PassResult]:
        """The job for ``model``: marks the pass as running before it starts (no-op for other models)."""
        if model not in self._models:
            return run

        def job() -> PassResult:
            with self._lock:
                state = self._models[model]
                state.running, state.pending, state.due = True, False, False
                event_at, state.event_at = state.event_at, None
            if event_at is not None:
                self._observe(model, max(0.0, self._now() - event_at))
            return run()

        return job

    def attach(self, scheduler: Any) -> None:
        """Follow the jobs' ends (dispatched after the scheduler released the instance); call it before the
        scheduler starts, or the end of a first pass could go unseen."""
        self._scheduler = scheduler
        mask = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES
        scheduler.add_listener(self._on_job_event, mask)

    def wake(self, model: str, *, event_at: float | None = None) -> None:
        """Run the pass as soon as it is free; ``event_at`` (epoch seconds) times the wake-up latency."""
        with self._lock:
            state = self._models[model]
            if event_at is not None and state.event_at is None:
                state.event_at = event_at
            state.woken = True
            if state.running:
                state.pending = True
                return
            if state.due:  # coalesced here rather than by a scheduler warning about a skipped run
                return
            state.due = True
        self._fire(model, self._now())

    # ---- internals ----------------

    def _on_job_event(self, event: JobEvent) -> None:
        model = event.job_id
        if model not in self._models:
            return
        if event.code == EVENT_JOB_MAX_INSTANCES:  # a wake the scheduler dropped: the pass was running
            with self._lock:
                self._models[model].pending = True
            return
        result = getattr(event, "retval", None)
        retry = isinstance(result, PassResult) and result.outcome is Outcome.RETRY
        when: float | None = None
        with self._lock:
            state = self._models[model]
            state.running = False
            if state.pending:  # woken while it ran: that pass may have listed before the event's object
                when = self._now()
            elif state.woken and (retry or event.code == EVENT_JOB_ERROR):
                first, cap = self._retry
                when = self._now() + backoff(state.failures, first=first, cap=cap)
                state.failures += 1
            else:
                state.woken, state.failures = False, 0
        if when is None:
            when = self._follow_up(model)
        if when is not None:
            # Not from this thread: a pass that ends at once is reported from inside the scheduler's own
            # job processing (holding its lock), which then overwrites next_run_time with the trigger's.
            threading.Thread(target=self._fire, args=(model, when), name="wakeup", daemon=True).start()

    def _fire(self, model: str, when: float) -> None:
        """Move the job's next run to ``when`` unless it is due sooner anyway."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        job = scheduler.get_job(model)
        if job is None:  # shutting down
            return
        at = datetime.fromtimestamp(when, UTC)
        if job.next_run_time is None or at < job.next_run_time:
            with contextlib.suppress(JobLookupError):  # removed by a shutdown in between
                scheduler.modify_job(model, next_run_time=at)
