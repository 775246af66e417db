"""The one polling loop (agent/infra/poll.py) and its faces: the demo's wait_until, testkit's poll_until."""

from __future__ import annotations

import pytest

from agent.infra.poll import poll_until
from agent.service.demo.run import wait_until
from testkit import poll


def test_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "ready", "later"])
    assert poll_until(lambda: next(answers), timeout=30, interval=0, failure=AssertionError) == "ready"


def test_a_missed_deadline_raises_the_callers_failure_with_the_last_value() -> None:
    seen: list[object] = []

    def failure(last: object) -> Exception:
        seen.append(last)
        return LookupError("never")

    with pytest.raises(LookupError, match="never"):
        poll_until(lambda: [], timeout=0, interval=0, failure=failure)
    assert seen == [[]]


def test_an_exception_from_the_check_propagates_at_once() -> None:
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        raise KeyError("boom")

    with pytest.raises(KeyError):
        poll_until(check, timeout=30, interval=0, failure=AssertionError)
    assert len(calls) == 1


def test_the_demo_gives_up_with_a_timeout_error_naming_what() -> None:
    with pytest.raises(TimeoutError, match=r"^gave up waiting 0s for v2 serving$"):
        wait_until("v2 serving", lambda: False, 0)


def test_the_kit_fails_the_test_naming_what_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"^timed out after 0s waiting for v2; last value: \[\]$"):
        poll.poll_until(lambda: [], timeout=0, what="v2")
