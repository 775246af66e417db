"""Waiting for versions: AVAILABLE is success, END with an error a failed load, the deadline a timeout.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agent.adapters.tfserving.wait import POLL_SECONDS, wait_for_versions
from agent.core.domain import ServedModel, VersionState, VersionStatus
from agent.core.errors import LoadFailedError, LoadTimeoutError, ServingUnavailableError
from agent.infra.clock import ManualClock
from testkit.fakes_serving import FakeServing


def serving_with(*versions: int, load_polls: int = 0, error: str = "") -> FakeServing:
    fake = FakeServing(load_polls=load_polls)
    for v in versions:
        fake.add_version("/models/m", v, error=error if v == versions[-1] else "")
    return fake


def test_returns_once_available() -> None:
    """A version loading over three status polls is waited for, in exact simulated time."""
    fake, clock = serving_with(1, 2, load_polls=3), ManualClock()
    fake.apply({"m": ServedModel("m", "/models/m", (1,))})  # a new model: ReloadConfig waits for it (B12)
    fake.apply({"m": ServedModel("m", "/models/m", (1, 2))})  # a new version loads at later polls
    got = wait_for_versions(fake, "m", [2], timeout=10, clock=clock)
    assert got[2].state is VersionState.AVAILABLE
    assert clock.sleeps == [POLL_SECONDS, POLL_SECONDS]


def test_end_with_error_is_a_load_failure() -> None:
    """B14: END carrying an error raises LoadFailedError with TF Serving's message, without waiting longer."""
    fake, clock = (
        serving_with(1, 2, load_polls=2, error="DATA_LOSS: Can't parse saved_model.pb"),
        ManualClock(),
    )
    fake.apply({"m": ServedModel("m", "/models/m", (1,))})
    fake.apply({"m": ServedModel("m", "/models/m", (1, 2))})
    with pytest.raises(LoadFailedError, match="version 2 of m failed to load: DATA_LOSS: Can't parse"):
        wait_for_versions(fake, "m", [2], timeout=10, clock=clock)
    assert clock.sleeps == [POLL_SECONDS]


class Scripted:
    """A ServingControl whose status answers follow a script (the last answer repeats)."""

    def __init__(self, *answers: Sequence[VersionStatus] | Exception) -> None:
        self.answers = list(answers)

    def status(self, name: str) -> Sequence[VersionStatus]:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_stale_end_without_error_is_waited_out() -> None:
    """B15: a re-added version still shows its old END (no error) until the next poll loads it."""
    end, avail = VersionStatus(3, VersionState.END), VersionStatus(3, VersionState.AVAILABLE)
    got = wait_for_versions(Scripted([end], [end], [avail]), "m", [3], timeout=5, clock=ManualClock())
    assert got[3] == avail


def test_unavailable_server_is_tolerated_while_it_restarts() -> None:
    """UNAVAILABLE during a TF Serving restart is polled through, not fatal."""
    down = ServingUnavailableError("UNAVAILABLE")
    avail = VersionStatus(1, VersionState.AVAILABLE)
    control = Scripted(down, down, [avail])
    assert wait_for_versions(control, "m", [1], timeout=5, clock=ManualClock())[1] == avail


def test_deadline_is_a_timeout_naming_the_states() -> None:
    """A version still LOADING at the deadline is a LoadTimeoutError after exactly ``timeout`` simulated s."""
    clock = ManualClock()
    control = Scripted([VersionStatus(1, VersionState.LOADING)])
    with pytest.raises(LoadTimeoutError, match=r"not AVAILABLE after 2s \(1: LOADING, 4: not listed\)"):
        wait_for_versions(control, "m", [4, 1], timeout=2, clock=clock, poll=0.5)
    assert sum(clock.sleeps) == pytest.approx(2.0)


def test_server_down_until_the_deadline_is_unavailable() -> None:
    """Never reaching TF Serving is ServingUnavailableError (retry later), not a verdict on the version."""
    control = Scripted(ServingUnavailableError("UNAVAILABLE: connection refused"))
    with pytest.raises(ServingUnavailableError, match="unreachable for 1s"):
        wait_for_versions(control, "m", [1], timeout=1, clock=ManualClock())


def test_wait_unloaded_waits_for_every_row_to_end() -> None:
    """wait_unloaded returns True once the removed model's versions are all END, False on the deadline."""
    from agent.adapters.tfserving.wait import wait_unloaded
    from agent.core.domain import ServedModel
    from agent.infra.clock import ManualClock
    from testkit.fakes_serving import FakeServing

    serving = FakeServing()
    serving.add_version("/models/m", 1)
    serving.apply({"m": ServedModel("m", "/models/m", (1,))})
    clock = ManualClock()
    assert wait_unloaded(serving, "m", timeout=1, clock=clock) is False  # still AVAILABLE
    serving.apply({"m": None})
    assert wait_unloaded(serving, "m", timeout=1, clock=clock) is True
