"""Time as a dependency: the reconciler asks a clock, so tests run policies and bake windows instantly."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait, unless the agent is stopping (then return early)."""
        ...


class SystemClock:
    """Wall time; ``sleep`` returns early once ``stop`` is set so SIGTERM never waits out a bake window."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        self.stop.wait(max(0.0, seconds))


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
