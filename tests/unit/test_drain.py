"""The drain (agent/pipeline/drain.py): not ready with the reason, wait for quiet or ``wait``, back after."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.core.domain import ServedModel
from agent.core.errors import ServingUnavailableError
from agent.infra.clock import ManualClock
from agent.infra.state import StateStore
from agent.pipeline.drain import Drain
from agent.pipeline.readiness import Readiness
from testkit.fakes_serving import FakeServing


def _readiness(tmp_path: Path, clock: ManualClock) -> Readiness:
    serving, state = FakeServing(), StateStore(tmp_path / "state")
    serving.add_version(str(tmp_path / "m"), 1)
    serving.reset([ServedModel("m", str(tmp_path / "m"), (1,))])
    with state.update("m") as record:
        record.serving = 1
    return Readiness("m", serving=serving, state=state, clock=clock)


class Traffic:
    """TF Serving's request counter: requests keep arriving until ``stops_at`` (simulated seconds)."""

    def __init__(self, clock: ManualClock, stops_at: float) -> None:
        self.clock, self.stops_at, self.start = clock, stops_at, clock.monotonic()

    def __call__(self) -> float:
        return round(min(self.clock.monotonic() - self.start, self.stops_at) * 100)


def test_holds_readiness_with_the_reason_and_goes_on_once_quiet(tmp_path: Path) -> None:
    """Requests stop 1 s after the hold: the drain goes on 0.5 s later, not after the whole wait."""
    clock = ManualClock()
    readiness = _readiness(tmp_path, clock)
    drain = Drain(readiness, clock=clock, wait=5.0, requests=Traffic(clock, 1.0))
    with drain.out_of_traffic("draining for the swap to v7") as waited:
        assert readiness.check() == (False, "draining for the swap to v7")
        assert 1.4 <= waited <= 1.7
    assert readiness.check() == (True, "ok")


def test_waits_the_whole_wait_while_requests_keep_coming(tmp_path: Path) -> None:
    """A load balancer that never stops sending: the drain gives up after ``wait`` and goes on."""
    clock = ManualClock()
    with Drain(
        _readiness(tmp_path, clock), clock=clock, wait=3.0, requests=Traffic(clock, 1e9)
    ).out_of_traffic("x") as waited:
        assert waited == pytest.approx(3.0, abs=0.15)


def test_without_a_counter_waits_the_whole_wait(tmp_path: Path) -> None:
    """No way to see requests (or the counter fails): wait ``wait``."""
    clock = ManualClock()

    def broken() -> float:
        raise ServingUnavailableError("monitoring endpoint down")

    for requests in (None, broken):
        drain = Drain(
            _readiness(tmp_path / str(id(requests)), clock), clock=clock, wait=2.0, requests=requests
        )
        with drain.out_of_traffic("x") as waited:
            assert waited == pytest.approx(2.0, abs=0.15)


def test_readiness_returns_when_the_work_fails(tmp_path: Path) -> None:
    """A load that fails inside the drain still puts the pod back into traffic."""
    clock = ManualClock()
    readiness = _readiness(tmp_path, clock)
    with pytest.raises(RuntimeError), Drain(readiness, clock=clock, wait=0.0).out_of_traffic("x"):
        raise RuntimeError("load failed")
    assert readiness.check() == (True, "ok")
