"""One retry policy for every bucket read: exponential backoff with full jitter on ``TransientSourceError``.

Each wait is drawn uniformly below a bound that starts at ``initial`` and doubles up to ``maximum``, for at
most ``deadline`` seconds in all; giving up becomes a ``TransientSourceError`` (a later pass may succeed).
Permanent errors (404, 403, checksum mismatch) are never retried. The loop is ours, not google.api_core's:
a file:// pass then never loads Google's HTTP stack (requests, urllib3, charset_normalizer), which is about
4 MiB of an idle agent's memory (benchmarks/footprint.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from agent.core.errors import TransientSourceError

_T = TypeVar("_T")

__all__ = ["Retry", "call_with_retry", "retry_policy"]


@dataclass(frozen=True)
class Retry:
    """How to retry: bounds in seconds, and who hears about each retried error."""

    initial: float = 0.5
    maximum: float = 20.0
    deadline: float = 300.0
    on_error: Callable[[Exception], object] | None = None
    sleep: Callable[[float], None] = time.sleep


def retry_policy(
    *,
    initial: float = 0.5,
    maximum: float = 20.0,
    deadline: float = 300.0,
    on_error: Callable[[Exception], object] | None = None,
) -> Retry:
    """Retry ``TransientSourceError``: first wait up to ``initial`` s, doubling to ``maximum`` s, each wait
    drawn uniformly below that bound (full jitter), for at most ``deadline`` s in all. ``on_error`` sees every
    retried error (logging, tests)."""
    return Retry(initial=initial, maximum=maximum, deadline=deadline, on_error=on_error)


def call_with_retry(retry: Retry, what: str, func: Callable[..., _T], *args: object) -> _T:
    """``func(*args)`` under ``retry``; giving up at the deadline is a TransientSourceError naming it."""
    give_up_at = time.monotonic() + retry.deadline
    bound = retry.initial
    while True:
        try:
            return func(*args)
        except TransientSourceError as err:
            if retry.on_error is not None:
                retry.on_error(err)
            wait = random.uniform(0.0, bound)
            if time.monotonic() + wait > give_up_at:
                raise TransientSourceError(
                    f"{what}: still failing after {retry.deadline:.0f}s of retries: {err.reason}"
                ) from err
            retry.sleep(wait)
            bound = min(retry.maximum, bound * 2)
