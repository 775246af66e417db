"""Waiting for a condition without guessing a sleep: poll it against a deadline on the monotonic clock.

The one loop behind the demo's ``wait_until`` (agent/service/demo/run.py) and the test kit's ``poll_until``
(testkit/poll.py, which the agent may not import). Each caller says what failing to see the condition is
(``failure``): the demo raises TimeoutError for its reader, tests raise AssertionError.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float,
    failure: Callable[[T | None], BaseException],
) -> T:
    """Call ``check`` until it returns something truthy and return that; after ``timeout`` seconds raise
    ``failure(last value seen)``. An exception from ``check`` propagates at once."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise failure(last)
        time.sleep(interval)
