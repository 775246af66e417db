"""Readiness per probe (agent/pipeline/readiness.py): from the state file and GetModelStatus, never a pass."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.core.domain import ServedModel, VersionStatus
from agent.core.errors import ServingDeadlineError
from agent.infra.clock import ManualClock
from agent.infra.state import StateStore
from agent.pipeline.readiness import Readiness
from testkit.fakes_serving import FakeServing


class SlowServing(FakeServing):
    """GetModelStatus misses its deadline while ``slow`` (a server busy loading)."""

    slow = False

    def status(self, name: str) -> Sequence[VersionStatus]:
        if self.slow:
            raise ServingDeadlineError("GetModelStatus m: deadline exceeded after 30s")
        return super().status(name)


def _world(tmp_path: Path, *, serving_version: int | None = 1) -> tuple[Readiness, SlowServing, ManualClock]:
    serving, clock, state = SlowServing(), ManualClock(), StateStore(tmp_path / "state")
    serving.add_version(str(tmp_path / "m"), 1)
    serving.reset([ServedModel("m", str(tmp_path / "m"), (1,))])
    if serving_version is not None:
        with state.update("m") as record:
            record.serving = serving_version
    return Readiness("m", serving=serving, state=state, clock=clock, grace=10.0), serving, clock


def test_ready_from_state_and_model_status_without_any_pass(tmp_path: Path) -> None:
    """A recorded version that TF Serving lists AVAILABLE is ready at once: no pass has to finish first."""
    readiness, _, _ = _world(tmp_path)
    assert readiness.check() == (True, "ok")


def test_not_ready_without_a_validated_version(tmp_path: Path) -> None:
    """Nothing promoted yet: not ready, and the reason says so."""
    readiness, _, _ = _world(tmp_path, serving_version=None)
    assert readiness.check() == (False, "no validated version serves yet")


def test_recorded_version_not_loaded_is_not_ready(tmp_path: Path) -> None:
    """TF Serving restarted without the recorded version: not ready, naming the version."""
    readiness, _, _ = _world(tmp_path, serving_version=2)
    assert readiness.check() == (False, "version 2 is not AVAILABLE in TF Serving")


def test_one_slow_model_status_does_not_flap_readiness(tmp_path: Path) -> None:
    """A GetModelStatus deadline keeps TF Serving's last answer ``grace`` seconds, then names the error."""
    readiness, serving, clock = _world(tmp_path)
    assert readiness.check()[0]
    serving.slow = True
    clock.now += 9.0
    assert readiness.check() == (True, "ok")
    clock.now += 2.0
    ready, why = readiness.check()
    assert not ready
    assert why.startswith("TF Serving: "), why


def test_slow_model_status_with_no_earlier_answer_is_not_ready(tmp_path: Path) -> None:
    """An agent that never heard from TF Serving does not guess: not ready with TF Serving's error."""
    readiness, serving, _ = _world(tmp_path)
    serving.slow = True
    ready, why = readiness.check()
    assert not ready
    assert why.startswith("TF Serving: "), why


def test_hold_reports_the_reason_until_released(tmp_path: Path) -> None:
    """A hold (a drain) keeps the model not ready with its reason whatever TF Serving says, until released."""
    readiness, _, _ = _world(tmp_path)
    readiness.hold("draining for the swap to v7")
    assert readiness.check() == (False, "draining for the swap to v7")
    readiness.release()
    assert readiness.check() == (True, "ok")


def test_tf_serving_not_listening_is_not_ready_at_once(tmp_path: Path) -> None:
    """A TF Serving that does not answer at all takes the pod out at once: its clients' requests fail too."""
    readiness, serving, _ = _world(tmp_path)
    assert readiness.check()[0]
    serving.unavailable = True
    ready, why = readiness.check()
    assert not ready
    assert why.startswith("TF Serving: "), why
