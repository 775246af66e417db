"""The promotion state machine (agent/pipeline/promotion.py): typed steps and recovery, one log per step."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from agent.core.errors import AgentError
from agent.infra.state import Pending, StateStore, Step
from agent.pipeline.promotion import ROLLBACK_ON_RESTART, Recovery
from agent.pipeline.report import Outcome
from tests.unit.test_reconciler import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_state_file_with_step_strings_loads_typed(tmp_path: Path) -> None:
    """A state file written before steps were typed ("step": "bake") loads as Step.BAKE and saves the same."""
    pending = {"version": 2, "previous": 1, "step": "bake", "started": 5.0}
    raw = {"format": 1, "models": {"m": {"serving": 2, "previous": 1, "pending": pending}}}
    (tmp_path / "state.json").write_text(json.dumps(raw))
    store = StateStore(tmp_path)
    assert store.get("m").pending == Pending(2, 1, Step.BAKE, 5.0)
    assert store.get("m").pending.step is Step.BAKE  # type: ignore[union-attr]
    store.save()
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["models"]["m"]["pending"] == pending


def test_an_unknown_step_names_the_file_and_the_fix(tmp_path: Path) -> None:
    """A pending step the agent does not know is refused with the file's path and the way out."""
    pending = {"version": 2, "previous": 1, "step": "teleport", "started": 5.0}
    (tmp_path / "state.json").write_text(json.dumps({"format": 1, "models": {"m": {"pending": pending}}}))
    with pytest.raises(AgentError, match=r"state\.json.*teleport.*move it aside"):
        StateStore(tmp_path)


def test_interrupted_rollback_is_finished_and_quarantines(world: World) -> None:
    """A crash during a rollback: the restart serves the good version and quarantines the bad one."""
    for v in (1, 2):
        world.publish(v)
        world.reconciler.reconcile()
    with world.state.update("m") as rec:  # killed once {1, 2} were sent, labels still on 2
        rec.pending = Pending(2, 1, Step.ROLLBACK, world.clock.time())
    world.serving.apply({"m": world.reconciler.promotion.swap.served([1, 2], 2)})
    done = world.build().promotion.recover()
    assert done is not None
    assert (done.outcome, done.serving) == (Recovery.UNDONE, 1)
    assert (world.record.serving, world.record.pending) == (1, None)
    assert world.record.quarantined == {2: ROLLBACK_ON_RESTART}
    assert world.serving.configured()["m"].versions == (1,)


def test_recover_with_nothing_in_flight_does_nothing(world: World) -> None:
    """No pending step: recover returns None and sends TF Serving nothing."""
    world.publish(1)
    world.reconciler.reconcile()
    world.serving.applied.clear()
    assert world.reconciler.promotion.recover() is None
    assert world.serving.applied == []


def test_failed_load_ends_the_promotion_on_the_old_version(world: World) -> None:
    """A load that fails puts {old} back and leaves nothing pending, so no restart undoes it twice."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2, error="DATA_LOSS: bad graph")
    with pytest.raises(AgentError, match="DATA_LOSS"):
        world.reconciler.promotion.load_beside(2, 1)
    assert world.record.pending is None
    assert world.serving.configured()["m"].versions == (1,)


def test_each_transition_is_logged_once(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """A promotion that stages, promotes and prunes logs each of those once, from the reporter alone."""
    for v in (1, 2):
        world.publish(v)
        world.reconciler.reconcile()
    world.publish(3)  # keep_versions 2: serving 3 and previous 2 stay, 1 goes
    caplog.set_level("DEBUG")
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED
    messages = Counter(r.getMessage() for r in caplog.records)
    for message in ("candidate", "staged", "validated", "promoted", "pruned"):
        assert messages[message] == 1, (message, messages)
    assert not (world.local / "1").exists()
    assert not any("stage" in m and m != "staged" for m in messages), messages
