"""Wake-ups through the real APScheduler job: at once, coalesced, never beside a running pass; a woken pass
that fails transiently is retried with backoff; a follow-up time (quiet timer) runs the pass then."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from agent.infra.config import ScheduleSettings
from agent.pipeline.reconciler import Outcome, PassResult
from agent.service.scheduler import build_scheduler
from agent.service.wakeup import Wakeups
from testkit.poll import poll_until

HOUR = ScheduleSettings(interval=timedelta(hours=1))


class Pass:
    """A model's pass that records when it ran, can be held, and returns scripted outcomes."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.running = self.most_running = 0
        self.hold = threading.Event()
        self.hold.set()
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()

    def __call__(self) -> PassResult:
        with self._lock:
            self.starts.append(time.monotonic())
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.hold.wait(30)
        with self._lock:
            self.running -= 1
            outcome = self.outcomes.pop(0) if self.outcomes else Outcome.IDLE
        return PassResult("m", outcome)


@dataclass
class Rig:
    run: Pass
    wakeups: Wakeups
    scheduler: BackgroundScheduler
    latencies: list[float]
    follow: list[float]


@pytest.fixture
def world() -> Iterator[Rig]:
    run, latencies, follow = Pass(), [], []
    wakeups = Wakeups(
        {"m"},
        observe=lambda _m, s: latencies.append(s),
        follow_up=lambda _m: follow.pop(0) if follow else None,
        retry=(0.05, 0.2),
    )
    scheduler = build_scheduler({"m": (HOUR, wakeups.wrap("m", run))})
    wakeups.attach(scheduler)
    scheduler.start()
    poll_until(lambda: run.starts and run.running == 0, timeout=30, what="the first pass")
    yield Rig(run, wakeups, scheduler, latencies, follow)
    run.hold.set()
    scheduler.shutdown(wait=True)


def test_a_wake_runs_the_pass_at_once_and_times_it(world: Rig) -> None:
    """A wake with an event time runs the pass now (not in an hour) and observes event → start latency."""
    run = world.run
    wakeups = world.wakeups
    latencies = world.latencies
    wakeups.wake("m", event_at=time.time() - 0.5)
    poll_until(lambda: len(run.starts) == 2, timeout=30, what="the woken pass")
    assert len(latencies) == 1
    assert 0.5 <= latencies[0] < 30


def test_wakes_during_a_pass_coalesce_into_one_pass_after_it(world: Rig) -> None:
    """Wakes while the pass runs are not lost and not run beside it: exactly one more pass follows."""
    run = world.run
    wakeups = world.wakeups
    run.hold.clear()
    wakeups.wake("m")
    poll_until(lambda: run.running == 1, timeout=30, what="the held pass")
    for _ in range(5):
        wakeups.wake("m")
    run.hold.set()
    poll_until(lambda: len(run.starts) == 3 and run.running == 0, timeout=30, what="one pass after it")
    assert run.most_running == 1
    wakeups.wake("m")  # and it is free again afterwards
    poll_until(lambda: len(run.starts) == 4, timeout=30, what="the next wake")


def test_a_woken_pass_that_fails_transiently_is_retried_with_backoff(world: Rig) -> None:
    """RETRY after a wake runs the pass again after 0.05 s, 0.1 s, … until it succeeds, then stops."""
    run = world.run
    wakeups = world.wakeups
    run.outcomes = [Outcome.RETRY, Outcome.RETRY, Outcome.IDLE]
    wakeups.wake("m")
    poll_until(lambda: len(run.starts) == 4 and run.running == 0, timeout=30, what="two retries")
    gaps = [b - a for a, b in zip(run.starts[1:], run.starts[2:], strict=False)]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1


def test_a_scheduled_pass_that_fails_waits_for_its_schedule(world: Rig) -> None:
    """Without a wake, a failed pass is left to the schedule (notifications change nothing there)."""
    run = world.run
    scheduler = world.scheduler
    assert run.outcomes == []
    job = scheduler.get_job("m")
    assert job.next_run_time.timestamp() > time.time() + 3000


def test_a_follow_up_time_runs_the_pass_then(world: Rig) -> None:
    """After a woken pass, a follow-up time (a quiet timer running out) moves the next run to it."""
    run = world.run
    wakeups = world.wakeups
    follow = world.follow
    follow.append(time.time() + 0.5)
    wakeups.wake("m")
    poll_until(lambda: len(run.starts) == 3, timeout=30, what="the woken pass and its follow-up")
    assert run.starts[2] - run.starts[1] >= 0.4


def test_models_without_notifications_keep_their_job() -> None:
    """wrap() returns the job unchanged for a model that has no notifications."""
    wakeups = Wakeups(set(), observe=lambda _m, _s: None, follow_up=lambda _m: None)

    def job() -> PassResult:
        return PassResult("m", Outcome.IDLE)

    assert wakeups.wrap("m", job) is job
