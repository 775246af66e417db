"""Faults the fault matrix (benchmarks/faults.py) found, pinned on fakes: each test is one bug's shape."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from agent.core.domain import ServedModel
from agent.pipeline.reconciler import Outcome
from tests.unit.test_reconciler import World


def test_server_lost_at_the_load_step_is_a_retry_not_a_quarantine(tmp_path: Path) -> None:
    """TF Serving unreachable as the new version is sent beside the old: the pass is a retry, the validated
    version is not quarantined, and it is promoted once the server is back."""
    world = World(tmp_path)
    world.publish(1)
    world.reconciler.reconcile()
    world.publish(2)
    serving = world.serving
    apply = serving.apply

    def dies_at_the_load_step(changes: Mapping[str, ServedModel | None]) -> None:
        model = changes.get("m")
        if model is not None and model.versions == (1, 2):
            serving.unavailable = True  # SIGKILLed just as ReloadConfig {1, 2} is sent
        apply(changes)

    serving.apply = dies_at_the_load_step  # type: ignore[method-assign]
    assert world.reconciler.reconcile().outcome is Outcome.RETRY
    assert world.record.quarantined == {}
    serving.apply = apply  # type: ignore[method-assign]
    serving.unavailable = False
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED
    assert (world.record.serving, world.record.pending) == (2, None)
