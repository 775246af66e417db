"""The reconciler end to end on fakes of our own ports: bucket in memory, TF Serving in memory, fake clock.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from agent.core.domain import VersionState
from agent.core.errors import TransientSourceError
from agent.infra.clock import ManualClock, Stopping, SystemClock
from agent.infra.config import ModelSettings
from agent.infra.metrics import AgentMetrics
from agent.infra.state import Pending, StateStore
from agent.pipeline.golden_feed import GoldenFeed
from agent.pipeline.reconciler import ModelReconciler, Outcome
from testkit.fakes_prometheus import FakeMetricQuery
from testkit.fakes_serving import FakeServing, half_plus_two
from testkit.fakes_sources import InMemoryGoldenFile, InMemorySource
from testkit.threads import held_elsewhere

FILES = {
    "saved_model.pb": b"graph",
    "variables/variables.index": b"index",
    "variables/variables.data": b"w" * 64,
}
GOLDEN = {"instances": [1.0, 2.0, 5.0], "expected": [2.5, 3.0, 4.5], "tolerance": {"atol": 1e-4}}


class World:
    """One model's bucket, volume, TF Serving, state and metrics."""

    def __init__(self, tmp_path: Path, golden: dict[str, Any] | None = GOLDEN, **policy: Any) -> None:
        self.local = tmp_path / "models" / "m"
        self.clock = ManualClock()
        self.source = InMemorySource("mem://bucket/m")
        self.serving = FakeServing()
        self.state = StateStore(tmp_path / "state")
        self.registry = CollectorRegistry()
        self.live: FakeMetricQuery | None = None
        self.golden_file = InMemoryGoldenFile(json.dumps(golden).encode() if golden else None)
        self.settings = ModelSettings(
            name="m",
            source="file:///unused",
            local_path=self.local,
            golden="mem://bucket/golden.json" if golden else None,
            policy={"bake_time": "3s", **policy},  # type: ignore[arg-type]
        )
        self.reconciler = self.build()

    def build(self) -> ModelReconciler:
        return ModelReconciler(
            self.settings,
            source=self.source,
            serving=self.serving,
            state=self.state,
            metrics=AgentMetrics(self.registry)
            if not hasattr(self, "reconciler")
            else self.reconciler.metrics,
            clock=self.clock,
            golden=GoldenFeed(
                "mem://bucket/golden.json", read=self.golden_file.read, stat=self.golden_file.stat
            )
            if self.golden_file.data is not None
            else None,
            load_timeout=30,
            live=self.live,
            memory=getattr(self, "memory", None),
        )

    def publish(self, version: int, function: Callable[..., Any] | None = None, *, error: str = "") -> None:
        self.source.publish(version, FILES, model="m")
        self.serving.add_version(str(self.local), version, function or half_plus_two(), error=error)

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {"model": "m", **labels})

    @property
    def record(self) -> Any:
        return self.state.get("m")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_first_version_is_staged_validated_and_promoted(world: World) -> None:
    """With nothing serving, v1 is staged, validated in the shadow, promoted with its label, then baked."""
    world.publish(1)
    result = world.reconciler.reconcile()
    assert (result.outcome, result.version) == (Outcome.PROMOTED, 1)
    assert (world.local / "1" / "saved_model.pb").read_bytes() == b"graph"
    config = world.serving.configured()
    assert set(config) == {"m"}  # the shadow is gone
    assert config["m"].versions == (1,)
    assert dict(config["m"].labels) == {"stable": 1}
    assert world.record.serving == 1
    assert world.record.pending is None
    assert world.metric("tfs_agent_serving_version") == 1
    assert world.metric("tfs_agent_candidates_total", outcome="promoted") == 1
    assert world.reconciler.ready


def test_swap_is_two_step_and_label_safe(world: World) -> None:
    """B13: {old,new} with the label on old, then the label moves to new and old is dropped."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2)
    world.serving.applied.clear()
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED
    main = [c["m"] for c in world.serving.applied if "m" in c]
    steps = [(m.versions, dict(m.labels)) for m in main]
    assert ((1, 2), {"stable": 1}) in steps
    assert steps[-1] == ((2,), {"stable": 2})
    assert steps.index(((1, 2), {"stable": 1})) < len(steps) - 1
    assert (world.record.serving, world.record.previous) == (2, 1)
    assert (world.local / "1").is_dir()  # kept for rollback


def test_golden_mismatch_is_quarantined_and_not_retried(world: World) -> None:
    """A candidate whose outputs differ from the golden data is rejected; the serving version stays."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2, half_plus_two(b=3.0))
    result = world.reconciler.reconcile()
    assert result.outcome is Outcome.REJECTED
    assert "validation" in world.record.quarantined[2]
    assert world.record.serving == 1
    assert world.serving.available("m") == [1]
    assert "m__candidate" not in world.serving.configured()
    again = world.reconciler.reconcile()
    assert again.outcome is Outcome.IDLE
    assert world.metric("tfs_agent_candidates_total", outcome="rejected") == 1


def test_load_failure_is_quarantined(world: World) -> None:
    """B6/B14: a version that fails to load is quarantined with TF Serving's error."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2, error="DATA_LOSS: Can't parse saved_model.pb as binary proto")
    assert world.reconciler.reconcile().outcome is Outcome.REJECTED
    assert "DATA_LOSS" in world.record.quarantined[2]
    assert world.record.serving == 1


def test_bake_failure_rolls_back(world: World) -> None:
    """A version that passes validation but misbehaves under traffic is rolled back label-safely."""
    world.publish(1)
    world.reconciler.reconcile()
    calls = {"n": 0}

    def degrading(inputs: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        x = np.asarray(inputs["x"], dtype=np.float32)
        return {"y": x * 0.5 + (2.0 if calls["n"] <= 2 else 9.0)}

    world.publish(2, degrading)
    result = world.reconciler.reconcile()
    assert result.outcome is Outcome.ROLLED_BACK
    assert world.record.serving == 1
    assert "bake" in world.record.quarantined[2]
    config = world.serving.configured()["m"]
    assert (config.versions, dict(config.labels)) == ((1,), {"stable": 1})
    assert world.metric("tfs_agent_rollbacks_total", reason="bake_failed") == 1
    assert world.metric("tfs_agent_serving_version") == 1


def test_transient_bucket_error_retries_without_quarantine(world: World) -> None:
    """A bucket outage is a retry, never a quarantine; the next pass promotes."""
    world.publish(1)
    world.source.fail("list_versions", "", TransientSourceError("503 Service Unavailable"))
    result = world.reconciler.reconcile()
    assert result.outcome is Outcome.RETRY
    assert world.record.quarantined == {}
    assert world.metric("tfs_agent_polls_total", outcome="error") == 1
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED


def test_corrupt_download_never_becomes_a_version(world: World) -> None:
    """An object whose bytes differ from the manifest fails staging; no integer directory appears."""
    world.publish(1)
    world.source.corrupt_downloads["variables/variables.data"] = b"x" * 64
    result = world.reconciler.reconcile()
    assert result.outcome is Outcome.REJECTED
    assert "staging" in world.record.quarantined[1]
    assert not (world.local / "1").exists()
    assert [p.name for p in world.local.iterdir()] == []


def test_incomplete_version_is_ignored(world: World) -> None:
    """A version without a manifest is not a candidate."""
    world.source.put(1, "saved_model.pb", b"graph")
    assert world.reconciler.reconcile().outcome is Outcome.IDLE
    assert world.metric("tfs_agent_candidates_total", outcome="incomplete") == 1


def test_window_holds_a_newer_version(tmp_path: Path) -> None:
    """A promotion window that does not match now holds the candidate (WAITING) but not the first version."""
    world = World(tmp_path, window="0 0 1 1 *")
    world.publish(1)
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED
    world.publish(2)
    result = world.reconciler.reconcile()
    assert (result.outcome, result.version) == (Outcome.WAITING, 2)
    assert world.record.serving == 1


def test_min_interval_uses_the_clock(tmp_path: Path) -> None:
    """min_interval holds a second promotion until the clock has moved far enough."""
    world = World(tmp_path, min_interval="10m")
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2)
    assert world.reconciler.reconcile().outcome is Outcome.WAITING
    world.clock.now += 600
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED


def test_pin_and_operator_rollback(world: World) -> None:
    """A pin brings back an older version; an operator rollback returns to the previous and quarantines."""
    for v in (1, 2):
        world.publish(v)
        world.reconciler.reconcile()
    world.reconciler.operator.pin(1)
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED
    assert world.record.serving == 1
    world.reconciler.operator.unpin()
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED  # newer policy: back to 2
    answer = world.reconciler.operator.rollback()
    assert answer == {"model": "m", "serving": 1, "quarantined": 2}
    assert world.record.quarantined[2] == "operator rollback"
    assert world.serving.configured()["m"].versions == (1,)
    assert world.reconciler.reconcile().outcome is Outcome.IDLE
    world.reconciler.operator.clear(2)
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED


def test_crash_during_load_is_undone(world: World) -> None:
    """A restart that finds a promotion stopped at 'load' goes back to the old version, then retries."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2)
    with world.state.update("m") as rec:
        rec.pending = Pending(2, 1, "load", world.clock.time())
    restarted = world.build()
    result = restarted.reconcile()
    assert result.outcome is Outcome.PROMOTED  # undone first, then the candidate goes through again
    assert world.record.serving == 2
    assert world.record.pending is None


def test_crash_after_switch_is_finished(world: World) -> None:
    """A restart that finds the new version already serving bakes and finishes the promotion instead of
    undoing it (tests/unit/test_bake_resume.py: the bake it watches)."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2)
    world.reconciler.promotion.load_beside(2, 1)
    world.reconciler.promotion.switch(2, 1)
    restarted = world.build()
    restarted.reconcile()
    assert (world.record.serving, world.record.previous, world.record.pending) == (2, 1, None)
    assert dict(world.serving.configured()["m"].labels) == {"stable": 2}


def test_serving_restart_reconverges(world: World) -> None:
    """If TF Serving comes back without labels (start-up config), the next pass adds them once AVAILABLE."""
    world.publish(1)
    world.reconciler.reconcile()
    world.serving.reset([world.reconciler.promotion.swap.served([1], None)])  # type: ignore[list-item]
    world.reconciler.reconcile()
    assert dict(world.serving.configured()["m"].labels) == {"stable": 1}
    assert world.serving.status("m")[0].state is VersionState.AVAILABLE


def test_serving_unreachable_is_a_retry(world: World) -> None:
    """TF Serving down: the pass is a retry and nothing is quarantined."""
    world.publish(1)
    world.serving.unavailable = True
    assert world.reconciler.reconcile().outcome is Outcome.RETRY
    assert world.record.quarantined == {}
    assert not world.reconciler.ready
    world.serving.unavailable = False
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED


def test_no_golden_file_uses_load_and_smoke(tmp_path: Path) -> None:
    """Without a golden file a version is promoted after loading and answering a smoke Predict."""
    world = World(tmp_path, golden=None)
    world.publish(1)
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED


class StoppingClock(ManualClock):
    """Like the agent's SystemClock after SIGTERM: every wait raises Stopping."""

    def sleep(self, seconds: float) -> None:
        raise Stopping("the agent is stopping")


def test_sigterm_during_bake_abandons_and_the_next_start_finishes(world: World) -> None:
    """Stopping mid-bake unwinds at once leaving the step recorded; the restarted agent finishes it."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2)
    world.clock = StoppingClock(world.clock.now)
    stopping = world.build()
    result = stopping.reconcile()
    assert result.outcome is Outcome.RETRY
    assert world.record.pending is not None
    assert world.record.pending.step == "bake"
    world.clock = ManualClock(world.clock.now)
    world.build().reconcile()
    assert (world.record.serving, world.record.pending) == (2, None)


def test_system_clock_sleep_raises_once_stopping() -> None:
    """SystemClock.sleep waits normally, and raises Stopping as soon as the stop event is set."""
    import threading

    stop = threading.Event()
    clock = SystemClock(stop)
    clock.sleep(0)
    stop.set()
    with pytest.raises(Stopping):
        clock.sleep(30)


def test_download_progress_is_logged_at_most_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    """A long download logs its progress, throttled by time, and not for the final file (staged says it)."""
    from agent.core.domain import FileEntry, Manifest
    from agent.pipeline.progress import DownloadProgress

    clock = ManualClock()
    manifest = Manifest("m", 7, tuple(FileEntry(f"f{i}", 100, "AAAAAA==") for i in range(4)))
    progress = DownloadProgress("m", manifest, clock, every=10)
    caplog.set_level("INFO", logger="tfs_agent.reconciler")
    progress("f0", 100)  # before the interval: silent
    clock.now += 11
    progress("f1", 100)  # 50 %
    progress("f2", 100)  # within the next interval: silent
    clock.now += 11
    progress("f3", 100)  # last file: silent
    lines = [r for r in caplog.records if r.getMessage() == "downloading"]
    assert len(lines) == 1
    assert lines[0].tfs_fields["percent"] == 50  # type: ignore[attr-defined]


def test_broken_golden_file_fails_the_pass_without_quarantine(world: World) -> None:
    """A golden file that does not parse is a config error: the pass fails visibly, the version is kept."""
    world.publish(1)
    world.golden_file.write(b'{"instances": 1}')
    result = world.reconciler.reconcile()
    assert result.outcome is Outcome.RETRY
    assert "instances" in (world.record.last_error or "")
    assert world.record.quarantined == {}


class _Recovering(ManualClock):
    """TF Serving comes back after the first wait."""

    def __init__(self, serving: FakeServing, now: float) -> None:
        super().__init__(now)
        self.serving = serving

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.serving.unavailable = False


def test_bake_is_no_verdict_while_tf_serving_is_unreachable(world: World) -> None:
    """An unreachable TF Serving during the bake neither passes nor fails the version."""
    from agent.core.errors import ServingUnavailableError

    world.publish(1)
    world.reconciler.reconcile()
    promotion = world.reconciler.promotion
    world.serving.unavailable = True
    with pytest.raises(ServingUnavailableError):
        promotion.bake(1, 3, lambda: None)
    promotion.clock = _Recovering(world.serving, world.clock.now)
    assert promotion.bake(1, 3, lambda: None) is None


def test_serving_down_mid_bake_finishes_later_instead_of_rolling_back(world: World) -> None:
    """A bake cut short by an unreachable TF Serving is finished by a later pass, never rolled back."""
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2)

    def probe_then_outage() -> None:
        world.serving.unavailable = True

    world.reconciler.candidate._bake = lambda version, golden: world.reconciler.promotion.bake(  # type: ignore[method-assign]
        version, 3, lambda: probe_then_outage()
    )
    assert world.reconciler.reconcile().outcome is Outcome.RETRY
    assert world.record.pending is not None
    assert world.record.quarantined == {}
    world.serving.unavailable = False
    world.reconciler.reconcile()
    assert (world.record.serving, world.record.pending, world.record.quarantined) == (2, None, {})


def test_full_volume_fails_the_pass_visibly(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC on the volume (even for the state file) is a counted, logged retry, never an unhandled crash."""
    import errno

    world.publish(1)

    def full(self: StateStore) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(StateStore, "save", full)
    result = world.reconciler.reconcile()
    assert result.outcome is Outcome.RETRY
    assert "volume is full (No space left on device" in result.detail
    assert world.metric("tfs_agent_polls_total", outcome="error") == 1
    assert world.metric("tfs_agent_errors_total", stage="volume", error="DiskSpaceError") == 1
    monkeypatch.undo()
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED


def test_latest_follows_a_version_deleted_from_the_bucket(tmp_path: Path) -> None:
    """`versions: latest` goes back to 1 once 2 leaves the bucket, though 2 is still on disk and serving."""
    world = World(tmp_path, versions="latest")
    for v in (1, 2):
        world.publish(v)
        world.reconciler.reconcile()
    world.source.remove_version(2)
    result = world.reconciler.reconcile()
    assert (result.outcome, result.version) == (Outcome.PROMOTED, 1)


def test_invalid_version_is_quarantined_and_cleared_after_a_fix_in_place(world: World) -> None:
    """A manifest naming another model quarantines the version (counted, with the fix in the reason);
    republished right and cleared, it is judged again and promoted."""
    world.source.publish(1, FILES, model="other")
    world.serving.add_version(str(world.local), 1, half_plus_two())
    assert world.reconciler.reconcile().outcome is Outcome.IDLE
    assert "--model m" in world.record.quarantined[1]
    assert world.metric("tfs_agent_quarantined_versions") == 1
    assert world.metric("tfs_agent_candidates_total", outcome="quarantined") == 1
    world.reconciler.reconcile()
    assert world.metric("tfs_agent_candidates_total", outcome="quarantined") == 1  # once, not every pass
    world.source.publish(1, FILES, model="m")
    world.reconciler.operator.clear(1)
    assert world.metric("tfs_agent_quarantined_versions") == 0
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED


def test_keep_versions_1_keeps_no_rollback_target(tmp_path: Path) -> None:
    """With keep_versions 1 only the serving version stays on disk, and none is claimed as previous."""
    world = World(tmp_path)
    world.settings = world.settings.model_copy(update={"keep_versions": 1})
    world.reconciler = world.build()
    for v in (1, 2):
        world.publish(v)
        world.reconciler.reconcile()
    assert sorted(p.name for p in world.local.iterdir()) == ["2"]
    assert world.record.previous is None


def test_serving_score_follows_the_promotion(tmp_path: Path) -> None:
    """validation_metric{role="serving"} is the promoted version's score, without champion_tolerance; an
    operator rollback counts the quarantine at once."""
    golden = {"instances": [1.0, 2.0, 5.0], "labels": [2.5, 3.0, 4.5], "metrics": {"mae": {"max": 1}}}
    world = World(tmp_path, golden=golden)
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2, half_plus_two(b=2.5))
    world.reconciler.reconcile()
    assert world.metric("tfs_agent_validation_metric", metric="mae", role="serving") == pytest.approx(0.5)
    world.reconciler.operator.rollback()
    assert world.metric("tfs_agent_quarantined_versions") == 1


def test_a_repeated_failure_is_logged_once(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """TF Serving down for many passes: every pass counts, one line says so."""
    world.publish(1)
    world.reconciler.reconcile()
    world.serving.unavailable = True
    with caplog.at_level("WARNING", logger="tfs_agent.reconciler"):
        for _ in range(3):
            assert world.reconciler.reconcile().outcome is Outcome.RETRY
    assert [r.getMessage() for r in caplog.records].count("pass failed") == 1
    errors = {"stage": "serving", "error": "ServingUnavailableError"}
    assert world.metric("tfs_agent_errors_total", **errors) == 3


def test_readiness_answers_while_a_pass_holds_the_model(world: World) -> None:
    """/readyz's answer comes while another thread's pass holds the model's lock (a bake of minutes)."""
    world.publish(1)
    world.reconciler.reconcile()
    with held_elsewhere(world.reconciler.lock):
        assert world.reconciler.check_ready() == (True, "ok")
