"""Readiness per probe (agent/pipeline/readiness.py): from the state file and GetModelStatus, never a pass."""

from __future__ import annotations

from pathlib import Path

from agent.core.domain import ServedModel
from agent.infra.clock import ManualClock
from agent.infra.state import StateStore
from agent.pipeline.readiness import Readiness
from testkit.fakes_serving import FakeServing


def _world(tmp_path: Path, *, serving_version: int | None = 1) -> tuple[Readiness, FakeServing, ManualClock]:
    serving, clock, state = FakeServing(), ManualClock(), StateStore(tmp_path / "state")
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


def test_one_failed_model_status_does_not_flap_readiness(tmp_path: Path) -> None:
    """A GetModelStatus failure keeps TF Serving's last answer for ``grace`` seconds, then names the error."""
    readiness, serving, clock = _world(tmp_path)
    assert readiness.check()[0]
    serving.unavailable = True
    clock.now += 9.0
    assert readiness.check() == (True, "ok")
    clock.now += 2.0
    ready, why = readiness.check()
    assert not ready
    assert why.startswith("TF Serving: "), why


def test_failed_model_status_with_no_earlier_answer_is_not_ready(tmp_path: Path) -> None:
    """An agent that never heard from TF Serving does not guess: not ready with TF Serving's error."""
    readiness, serving, _ = _world(tmp_path)
    serving.unavailable = True
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
