"""The one way tests and benchmarks wait: poll a condition against a deadline on the monotonic clock.

Never sleep to wait for something: ask for it, often, until a generous deadline (the suite shares two cores
with other suites, so everything may be slow). The loop is the agent's (agent/infra/poll.py, which the demo
uses too); here a missed deadline is a test failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from agent.infra import poll

T = TypeVar("T")


def poll_until(
    check: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.02, what: str = ""
) -> T:
    """Call ``check`` until it returns something truthy and return that; AssertionError naming ``what`` (and
    the last value seen) after ``timeout`` seconds. An exception from ``check`` propagates at once."""

    def failure(last: T | None) -> AssertionError:
        return AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value: {last!r}")

    return poll.poll_until(check, timeout=timeout, interval=interval, failure=failure)
