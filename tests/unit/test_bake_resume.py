"""A bake a crash cut short is resumed by the restarted agent (Promotion.recover → Candidate.resume): what is
left of the recorded window is watched, and a failure rolls back exactly as an uninterrupted bake's would."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.adapters.tfserving.monitoring import parse
from agent.infra.clock import ManualClock, Stopping
from agent.infra.config_policy import LiveGatesSettings
from agent.infra.state import Pending, StateStore, Step
from agent.pipeline import live
from agent.pipeline.live import LiveWatch
from agent.pipeline.report import Outcome
from tests.unit.test_live_gates import exposition
from tests.unit.test_reconciler import World

BAKE = 3.0  # World's policy bake_time
INTERVAL = 0.3  # Promotion.bake's look interval for a 3 s bake


class KilledAfter(ManualClock):
    """The agent dies in its bake after ``looks`` waits (Stopping unwinds like SIGTERM; the state left behind
    is what a SIGKILL leaves: the BAKE step recorded)."""

    def __init__(self, now: float, looks: int) -> None:
        super().__init__(now)
        self.looks = looks

    def sleep(self, seconds: float) -> None:
        if len(self.sleeps) >= self.looks:
            raise Stopping("killed")
        super().sleep(seconds)


class Breakable:
    """half_plus_two until ``broken`` is set, then wrong answers."""

    def __init__(self) -> None:
        self.broken = False

    def __call__(self, inputs: dict[str, Any]) -> dict[str, Any]:
        x = np.asarray(inputs["x"], dtype=np.float32)
        return {"y": x * 0.5 + (9.0 if self.broken else 2.0)}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _killed_mid_bake(world: World, model: Breakable, looks: int = 3) -> float:
    """v1 serves, v2 is promoted and the agent dies ``looks`` waits into v2's bake; returns seconds baked."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2, model)
    world.clock = KilledAfter(world.clock.now, looks)
    assert world.build().reconcile().outcome is Outcome.RETRY
    pending = world.record.pending
    assert (pending.step, pending.version, pending.previous) == (Step.BAKE, 2, 1)
    assert pending.bake_seconds == BAKE
    baked = world.clock.now - pending.bake_started
    assert 0 < baked < BAKE
    world.clock = ManualClock(world.clock.now)
    return float(baked)


def test_a_bake_that_fails_after_the_restart_rolls_back(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed mid-bake, the version goes wrong after the restart: the resumed bake rolls back to the recorded
    previous version with the uninterrupted bake's log line and metric, its reason naming the restart."""
    model = Breakable()
    _killed_mid_bake(world, model)
    model.broken = True
    caplog.set_level(logging.INFO)
    result = world.build().reconcile()
    assert result.outcome is Outcome.ROLLED_BACK
    assert (world.record.serving, world.record.pending) == (1, None)
    assert world.record.quarantined[2].startswith("bake: resumed after a restart: ")
    config = world.serving.configured()["m"]
    assert (config.versions, dict(config.labels)) == ((1,), {"stable": 1})
    assert world.metric("tfs_agent_rollbacks_total", reason="bake_failed") == 1
    assert world.metric("tfs_agent_serving_version") == 1
    failed = [r for r in caplog.records if r.getMessage() == "bake failed; rolling back"]
    assert [r.tfs_fields["reason"].split(":")[0] for r in failed] == ["resumed after a restart"]  # type: ignore[attr-defined]
    assert "recovered: resuming the bake" in [r.getMessage() for r in caplog.records]


def test_a_good_version_resumes_for_what_is_left_of_the_window(world: World) -> None:
    """A version that stays good is watched for the rest of its window only (from the recorded start), then
    promoted and nothing is left pending."""
    baked = _killed_mid_bake(world, Breakable())
    result = world.build().reconcile()
    assert (result.outcome, result.version) == (Outcome.PROMOTED, 2)
    assert (world.record.serving, world.record.previous, world.record.pending) == (2, 1, None)
    watched = sum(world.clock.sleeps)
    assert BAKE - baked <= watched < BAKE - baked + INTERVAL


def test_a_state_file_without_a_window_bakes_the_whole_bake_time(world: World, tmp_path: Path) -> None:
    """A BAKE step recorded by an agent from before windows were recorded: its start is unknown, so the whole
    bake_time is watched; the file loads unchanged."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2)
    world.reconciler.promotion.load_beside(2, 1)
    world.reconciler.promotion.switch(2, 1)
    world.reconciler.promotion.commit(2, 1)
    raw = json.loads(world.state.path.read_text())
    assert set(raw["models"]["m"]["pending"]) == {"version", "previous", "step", "started"}
    world.state = StateStore(world.state.path.parent)
    world.clock.sleeps.clear()
    result = world.build().reconcile()
    assert result.outcome is Outcome.PROMOTED
    assert BAKE <= sum(world.clock.sleeps) < BAKE + INTERVAL


def test_a_window_already_over_takes_one_look(world: World) -> None:
    """Killed after the window ended but before it was marked done (or a fleet canary's one-look bake, whose
    window is 0 s): one look, no second bake."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2)
    promotion = world.reconciler.promotion
    promotion.load_beside(2, 1)
    promotion.switch(2, 1)
    promotion.commit(2, 1)
    promotion.baking(2, 0.0)
    world.clock.advance(60)
    world.clock.sleeps.clear()
    assert world.build().reconcile().outcome is Outcome.PROMOTED
    assert world.clock.sleeps == []


def test_a_crash_between_switch_and_commit_bakes_the_whole_window(world: World) -> None:
    """Labels on the new version but the bake never began: recorded as serving, then baked in full."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2)
    world.reconciler.promotion.load_beside(2, 1)
    world.reconciler.promotion.switch(2, 1)
    world.clock.sleeps.clear()
    assert world.build().reconcile().outcome is Outcome.PROMOTED
    assert (world.record.serving, world.record.previous, world.record.pending) == (2, 1, None)
    assert BAKE <= sum(world.clock.sleeps) < BAKE + INTERVAL


def test_the_window_left(tmp_path: Path) -> None:
    """What is left of a recorded window, never more than it nor below 0; unknown: the whole bake_time."""
    pending = Pending(2, 1, Step.BAKE, 0.0, 100.0, 30.0)
    assert pending.bake_left(110.0, 300.0) == 20.0
    assert pending.bake_left(500.0, 300.0) == 0.0
    assert pending.bake_left(50.0, 300.0) == 30.0  # the wall clock went back: no time passed
    assert Pending(2, 1, Step.BAKE, 0.0).bake_left(110.0, 300.0) == 300.0


def test_the_window_is_kept_in_the_state_file(tmp_path: Path) -> None:
    """A recorded window survives a restart of the state store."""
    store = StateStore(tmp_path)
    with store.update("m") as rec:
        rec.pending = Pending(2, 1, Step.BAKE, 5.0, 7.0, 30.0)
    assert StateStore(tmp_path).get("m").pending == Pending(2, 1, Step.BAKE, 5.0, 7.0, 30.0)


def _samples(monkeypatch: pytest.MonkeyPatch, *texts: str) -> None:
    samples = iter(parse(text, "m") for text in texts)
    monkeypatch.setattr(live, "scrape", lambda url, model, **_: next(samples))


def test_resumed_live_gates_judge_errors_but_not_p99_without_the_baseline(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """After a restart the baseline from before the swap is gone: a slow window is not judged on p99 (logged),
    while the error ratio, which needs no baseline, still fails a bad window."""
    watch = LiveWatch("http://tfs:8501/monitoring", "m", LiveGatesSettings())
    assert watch.before is None  # a fresh process: baseline() was called by the one that died
    start = exposition(ok=100, bad=0, fast=100, slow=0)
    _samples(monkeypatch, exposition(ok=200, bad=0, fast=100, slow=100))
    caplog.set_level(logging.WARNING)
    assert watch.judge(2, parse(start, "m")) is None
    assert any("p99 gate does not judge" in r.getMessage() for r in caplog.records)
    _samples(monkeypatch, exposition(ok=150, bad=50, fast=200, slow=0))
    problem = watch.judge(2, parse(start, "m"))
    assert "error ratio" in (problem or "")
    watch.before = parse(start, "m")  # the same slow window, with a baseline, fails on p99
    _samples(monkeypatch, exposition(ok=200, bad=0, fast=100, slow=100))
    problem = watch.judge(2, parse(start, "m"))
    assert "p99" in (problem or "")
