"""serving.memory_limit: the 2x peak of a swap estimated from sizes on disk before any load."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.core.domain import ServedModel
from agent.core.errors import MemoryLimitError
from agent.pipeline.memory import MemoryBudget
from agent.pipeline.reconciler import Outcome
from agent.pipeline.volume import volume_usage
from testkit.fakes_serving import FakeServing
from tests.unit.test_reconciler import World


def _version(base: Path, version: int, size: int) -> Path:
    path = base / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"x" * size)
    return path


def test_estimate_is_size_on_disk_times_the_factor(tmp_path: Path) -> None:
    """A version's resident estimate is its allocated bytes on disk times memory_factor."""
    path = _version(tmp_path / "m", 1, 1 << 20)
    assert MemoryBudget(1 << 30, 1.5).resident(path) == int(volume_usage([path]) * 1.5)


def test_candidate_that_fits_only_alone_is_refused_naming_the_drain(tmp_path: Path) -> None:
    """v2 beside v1 exceeds the limit, v2 alone does not: refused, the reason names both and fleet.drain."""
    old, new = _version(tmp_path / "m", 1, 1 << 20), _version(tmp_path / "m", 2, 1 << 20)
    serving = FakeServing()
    serving.add_version(str(tmp_path / "m"), 1)
    serving.reset([ServedModel("m", str(tmp_path / "m"), (1,))])
    one = volume_usage([old])
    with pytest.raises(MemoryLimitError) as err:
        MemoryBudget(int(one * 1.5), 1.0).check_beside(serving, new, model="m")
    assert "version 2 of m needs about 1.0 MiB beside 1.0 MiB loaded" in err.value.reason
    assert "only a drained pod" in err.value.reason
    assert err.value.retryable
    MemoryBudget(one * 2 + 1, 1.0).check_beside(serving, new, model="m")  # fits: no error


def test_candidate_bigger_than_the_limit_alone_says_so(tmp_path: Path) -> None:
    """A version that would not fit even with nothing else loaded is refused as such."""
    new = _version(tmp_path / "m", 2, 1 << 20)
    with pytest.raises(MemoryLimitError, match="does not fit even alone"):
        MemoryBudget(1 << 10, 1.0).check_beside(FakeServing(), new, model="m")


def test_reconciler_refuses_as_a_counted_retry_then_promotes_once_raised(tmp_path: Path) -> None:
    """Too big for the limit: a retry (not a quarantine) with the reason in last_error and counted under
    stage memory; once the limit is raised the next pass promotes it."""
    world = World(tmp_path)
    world.publish(1)
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED
    one = volume_usage([world.local / "1"])
    world.memory = MemoryBudget(int(one * 1.5), 1.0)  # type: ignore[attr-defined]
    world.reconciler = world.build()
    world.publish(2)
    result = world.reconciler.reconcile()
    assert result.outcome is Outcome.RETRY
    assert "serving.memory_limit" in (world.record.last_error or "")
    assert world.record.quarantined == {}
    assert world.metric("tfs_agent_errors_total", stage="memory", error="MemoryLimitError") == 1
    assert world.serving.configured()["m"].versions == (1,)  # nothing was loaded
    world.memory = MemoryBudget(one * 3, 1.0)  # type: ignore[attr-defined]
    world.reconciler = world.build()
    assert world.reconciler.reconcile().outcome is Outcome.PROMOTED
