"""The retry policy for bucket reads: backoff doubling to a cap, full jitter, a deadline, transient only."""

from __future__ import annotations

import random

import pytest

from agent.adapters.sources.retrying import Retry, call_with_retry
from agent.core.errors import PermanentSourceError, TransientSourceError


class Flaky:
    """Fails with ``error`` ``times`` times, then answers."""

    def __init__(self, times: int, error: Exception) -> None:
        self.times, self.error, self.calls = times, error, 0

    def __call__(self, value: str) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return value


def test_transient_errors_are_retried_with_doubling_jittered_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each wait is below a bound that starts at initial and doubles up to maximum; then the call answers."""
    bounds: list[float] = []
    monkeypatch.setattr(random, "uniform", lambda low, high: bounds.append(high) or high / 2)
    waits: list[float] = []
    seen: list[Exception] = []
    retry = Retry(initial=1.0, maximum=4.0, deadline=1e6, on_error=seen.append, sleep=waits.append)
    flaky = Flaky(5, TransientSourceError("503"))
    assert call_with_retry(retry, "listing gs://b/m/", flaky, "ok") == "ok"
    assert bounds == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert waits == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert len(seen) == 5
    assert flaky.calls == 6


def test_giving_up_at_the_deadline_names_the_call() -> None:
    """When the next wait would pass the deadline, the error is a TransientSourceError naming what failed."""
    retry = Retry(initial=10.0, maximum=10.0, deadline=0.0, sleep=lambda s: None)
    with pytest.raises(TransientSourceError, match=r"downloading gs://b/m/1/x: still failing after 0s.*503"):
        call_with_retry(retry, "downloading gs://b/m/1/x", Flaky(10**6, TransientSourceError("503")), "x")


def test_permanent_errors_are_not_retried() -> None:
    """A 404/403 propagates on the first attempt, untouched."""
    flaky = Flaky(1, PermanentSourceError("HTTP 403"))
    with pytest.raises(PermanentSourceError, match="403"):
        call_with_retry(Retry(sleep=lambda s: None), "reading", flaky, "x")
    assert flaky.calls == 1
