"""The performance policy in the reconciler, on fakes of our ports: the serving version is re-scored on a
refreshed golden file (or read live), a waiting candidate is promoted once that evidence crosses the floor,
and a broken refresh changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.pipeline.reconciler import Outcome
from testkit.fakes_prometheus import FakeMetricQuery
from testkit.fakes_serving import half_plus_two
from tests.unit.test_reconciler import World

X = [1.0, 2.0, 5.0]
#: v1 = 0.5x + 2 answers exactly these: its mae is 0 on them.
FITS_V1 = {"instances": X, "labels": [2.5, 3.0, 4.5]}
#: The world moved on: labels of 0.5x + 3, on which v1's mae is 1.0 (above the 0.5 floor) and v2's is 0.
FITS_V2 = {"instances": X, "labels": [3.5, 4.0, 5.5]}


def golden_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


@pytest.fixture
def held(tmp_path: Path) -> World:
    """v1 serves under ``replace_below: {mae: 0.5}``; v2 (0.5x + 3) is published and waits."""
    world = World(tmp_path, golden=FITS_V1, replace_below={"mae": 0.5})
    world.publish(1)
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED
    world.publish(2, half_plus_two(b=3.0))
    result = world.reconciler.reconcile()
    assert result.outcome is Outcome.WAITING, result.detail
    return world


def test_waiting_candidate_says_why_with_numbers(held: World) -> None:
    """The hold names the metric, the floor, the golden generation and the score's age (scored at the
    promotion, before the 3 s bake)."""
    reason = held.reconciler.last_plan.reason  # type: ignore[union-attr]
    assert (
        reason == "serving version still performs: serving mae 0 ≤ 0.5 on golden generation 1 scored 3 s ago"
    )
    assert held.metric("tfs_agent_validation_metric", metric="mae", role="serving") == 0.0
    assert held.record.serving_score["generation"] == "1"


def test_unchanged_golden_file_is_only_stat_ed(held: World) -> None:
    """Each pass asks for the golden file's generation; its content is read once, and nothing is
    re-scored while the file is unchanged and the score is younger than rescore_interval."""
    reads, predictions = held.golden_file.reads, len(held.serving.predictions)
    for _ in range(3):
        held.reconciler.reconcile()
    assert held.golden_file.reads == reads
    assert held.golden_file.stats >= 5
    assert len(held.serving.predictions) == predictions


def test_a_restart_trusts_a_recent_score_on_the_same_generation(held: World) -> None:
    """A restarted agent reads the golden file once and, finding the generation its recorded score was made
    on (and the score younger than rescore_interval), does not score again."""
    held.reconciler = held.build()
    predictions = len(held.serving.predictions)
    assert held.reconciler.reconcile().outcome is Outcome.WAITING
    assert len(held.serving.predictions) == predictions
    assert held.reconciler.status()["evidence"]["golden_generation"] == "1"


def test_refreshed_golden_file_rescores_and_promotes(held: World) -> None:
    """The golden file is rewritten with data on which v1 is worse than the floor: v1 is re-scored by
    explicit version (no shadow), the score recorded with its generation, and v2 promoted."""
    held.golden_file.write(golden_bytes(FITS_V2))
    applied = len(held.serving.applied)
    result = held.reconciler.reconcile()
    assert (result.outcome, result.version) == (Outcome.PROMOTED, 2), result.detail
    first_new = held.serving.applied[applied]
    assert "m__candidate" in first_new  # the candidate's own validation; the re-score loaded nothing
    assert ("m", 1, "serving_default") in held.serving.predictions
    assert held.record.serving == 2
    assert held.record.serving_score["version"] == 2
    assert held.record.serving_score["generation"] == "2"
    assert held.metric("tfs_agent_validation_metric", metric="mae", role="serving") == 0.0


def test_rescore_interval_measures_again(held: World) -> None:
    """With the file unchanged, the serving version is re-scored once rescore_interval has passed."""
    before = held.record.serving_score["scored_at"]
    held.clock.now = before + 599
    held.reconciler.reconcile()
    assert held.record.serving_score["scored_at"] == before
    held.clock.now = before + 601
    held.reconciler.reconcile()
    assert held.record.serving_score["scored_at"] == held.clock.now
    assert held.reconciler.last_plan.action.value == "wait"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "needle", "kind"),
    [
        (b'{"instances": [1.0, 2.0', "not valid JSON", "GoldenFileError"),
        (golden_bytes({"inputs": {"nope": X}, "labels": [0, 0, 0]}), "does not fit", "SignatureMismatch"),
    ],
)
def test_broken_refresh_changes_nothing(held: World, content: bytes, needle: str, kind: str) -> None:
    """A refresh that does not parse or does not fit the signature keeps the last good score and data,
    holds the candidate, and is named in /status and tfs_agent_evidence_ok{source="golden"}."""
    score = held.record.serving_score
    held.golden_file.write(content)
    result = held.reconciler.reconcile()
    assert result.outcome is Outcome.WAITING
    assert held.record.serving_score == score
    assert held.record.golden_generation == "1"
    for _ in range(3):  # the problem stays shown for as long as the bucket holds the broken file
        held.reconciler.reconcile()
        problem = held.reconciler.status()["evidence"]["problems"]["golden"]
        assert needle in problem
        assert held.metric("tfs_agent_evidence_ok", source="golden") == 0.0
    assert held.metric("tfs_agent_errors_total", stage="golden", error=kind) == 1.0
    assert held.record.quarantined == {}
    held.golden_file.write(golden_bytes(FITS_V2))  # the next good refresh is used again
    assert held.reconciler.reconcile().outcome is Outcome.PROMOTED
    assert held.metric("tfs_agent_evidence_ok", source="golden") == 1.0


LIVE = 'avg_over_time(model_online_accuracy{model="m"}[1h])'


@pytest.fixture
def live_held(tmp_path: Path) -> World:
    """v1 serves under a live floor (online accuracy below 0.8); Prometheus says 0.85; v2 waits."""
    world = World(tmp_path, replace_below={"query": LIVE, "below": 0.8, "name": "online accuracy"})
    world.live = FakeMetricQuery({LIVE: 0.85})
    world.reconciler = world.build()
    world.publish(1)
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED
    world.publish(2)
    assert world.reconciler.reconcile().outcome is Outcome.WAITING
    return world


def test_live_metric_holds_then_promotes(live_held: World) -> None:
    """The 85 % / 80 % / 78 % example on live evidence: 0.85 ≥ 0.80 holds v2; 0.78 promotes it."""
    assert live_held.reconciler.last_plan.reason == (  # type: ignore[union-attr]
        f"serving version still performs: online accuracy 0.85 ≥ 0.8 (query {LIVE})"
    )
    assert live_held.live is not None
    live_held.live.values[LIVE] = 0.78
    result = live_held.reconciler.reconcile()
    assert (result.outcome, result.version) == (Outcome.PROMOTED, 2)
    assert "online accuracy 0.78 < 0.8" in result.detail or live_held.record.serving == 2


@pytest.mark.parametrize("fault", ["unreachable", "no data"])
def test_live_metric_unavailable_holds_and_is_reported(live_held: World, fault: str) -> None:
    """An unreachable Prometheus or a query without data never replaces the serving version; /status and
    tfs_agent_evidence_ok{source="prometheus"} say so, and the next good reading is used."""
    assert live_held.live is not None
    if fault == "unreachable":
        live_held.live.error = "Prometheus at http://p:9090 is unreachable (Connection refused)"
    else:
        del live_held.live.values[LIVE]
    result = live_held.reconciler.reconcile()
    assert result.outcome is Outcome.WAITING
    assert fault in live_held.reconciler.last_plan.reason  # type: ignore[union-attr]
    assert fault in live_held.reconciler.status()["evidence"]["problems"]["prometheus"]
    assert live_held.metric("tfs_agent_evidence_ok", source="prometheus") == 0.0
    live_held.live.error, live_held.live.values[LIVE] = None, 0.5
    assert live_held.reconciler.reconcile().outcome is Outcome.PROMOTED
    assert live_held.metric("tfs_agent_evidence_ok", source="prometheus") == 1.0
