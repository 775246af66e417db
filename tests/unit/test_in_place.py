"""``validation: in_place`` on fakes of our ports: one load beside the old version, labels move only after."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.pipeline.reconciler import Outcome
from testkit.fakes_serving import half_plus_two
from tests.unit.test_reconciler import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(tmp_path)
    made.settings = made.settings.model_copy(update={"validation": "in_place"})
    made.reconciler = made.build()
    made.publish(1)
    assert made.reconciler.reconcile().outcome is Outcome.PROMOTED
    return made


def _configs_since(world: World, start: int) -> list[dict[str, object]]:
    return [dict(c) for c in world.serving.applied[start:]]


def test_candidate_is_validated_beside_the_old_version_without_a_shadow(world: World) -> None:
    """v2 is loaded once as m {1, 2} with the label on 1, validated there, then the label moves; no shadow."""
    start = len(world.serving.applied)
    world.publish(2)
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED
    configs = _configs_since(world, start)
    assert all(set(c) == {"m"} for c in configs), "a shadow model was loaded"
    first = configs[0]["m"]
    assert (first.versions, dict(first.labels)) == ((1, 2), {"stable": 1})  # type: ignore[attr-defined]
    assert dict(world.serving.configured()["m"].labels) == {"stable": 2}
    assert world.record.last_verdict["ok"] is True
    assert world.metric("tfs_agent_candidates_total", outcome="promoted") == 2


def test_bad_candidate_is_unloaded_and_quarantined_before_the_label_moves(world: World) -> None:
    """v2 answers wrongly: it is dropped from the config and quarantined; the label never pointed at it."""
    start = len(world.serving.applied)
    world.publish(2, half_plus_two(b=3.0))
    assert world.reconciler.reconcile().outcome is Outcome.REJECTED
    labels = [dict(c["m"].labels) for c in _configs_since(world, start)]  # type: ignore[attr-defined]
    assert all(lb == {"stable": 1} for lb in labels), labels
    assert world.serving.configured()["m"].versions == (1,)
    assert "validation" in world.record.quarantined[2]
    assert world.record.pending is None
    assert world.record.serving == 1
