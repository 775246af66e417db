"""One retry policy for every bucket read: ``google.api_core.retry`` on ``TransientSourceError`` only.

Exponential backoff with full jitter and a bounded total time; giving up becomes a ``TransientSourceError``
(a later pass may succeed), while permanent errors (404, 403, checksum mismatch) are never retried.

This module is also where ``google.api_core`` is first imported (``agent.adapters.sources`` imports it):
api_core warns at import when the optional ``grpcio-status`` is missing. The agent uses none of api_core's
gRPC paths, and under warnings-as-errors (the test suite) that warning would abort every import of it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

from agent.core.errors import TransientSourceError

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*grpcio-status.*", category=ImportWarning)
    from google.api_core.exceptions import RetryError
    from google.api_core.retry import Retry, if_exception_type

_T = TypeVar("_T")

__all__ = ["Retry", "call_with_retry", "retry_policy"]


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
    return Retry(
        predicate=if_exception_type(TransientSourceError),
        initial=initial,
        maximum=maximum,
        multiplier=2.0,
        timeout=deadline,
        on_error=on_error,
    )


def call_with_retry(retry: Retry, what: str, func: Callable[..., _T], *args: object) -> _T:
    """``func(*args)`` under ``retry``; giving up at the deadline is a TransientSourceError naming it."""
    try:
        result: _T = retry(func)(*args)
    except RetryError as err:
        raise TransientSourceError(
            f"{what}: still failing after {retry.timeout:.0f}s of retries: {err.cause}"
        ) from err
    return result
