"""Time as a dependency: the reconciler asks a clock, so tests run policies and bake windows instantly."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch: for timestamps (state file, metrics, policy windows), never deadlines."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never jump (NTP, DST): for deadlines and durations."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; raises Stopping if the agent is asked to stop meanwhile (abandon the step)."""
        ...


class Stopping(Exception):  # noqa: N818  (a signal, not an error: the agent was asked to stop)
    """Raised from ``SystemClock.sleep`` once the agent is stopping: the pass abandons its current step.

    Every step is recorded before it is sent, so the next start finishes or undoes it (ADR 5); unwinding is
    safe, waiting out a 10-minute load deadline after SIGTERM is not."""


class SystemClock:
    """Wall time; ``sleep`` raises Stopping once ``stop`` is set, so SIGTERM never waits out a deadline."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if self.stop.wait(max(0.0, seconds)):
            raise Stopping("the agent is stopping")


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class ManualClock:
    """The one simulated ``Clock`` (the fleet simulation, and every test through testkit): it moves only when
    told to (``advance``) or slept on (``sleep`` advances it at once and records the wait in ``sleeps``)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
