"""The wedge bookkeeping: N deadlines in a row make a wedge with a reason; any answer starts over; the agent
exposes it as a gauge, in /status and (only when opted in) as TF Serving's liveness."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.core.wedge import ReloadWatch
from agent.infra.config import settings_from_mapping
from agent.service.app import Agent
from testkit.fakes_serving import FakeServing
from testkit.fakes_sources import InMemorySource


def test_threshold_deadlines_in_a_row_make_a_wedge() -> None:
    """The Nth deadline in a row (and only that one) reports the transition; the reason names N, the last
    error and the fix."""
    watch = ReloadWatch(threshold=3)
    assert [watch.deadline(f"ReloadConfig: DEADLINE_EXCEEDED #{n}") for n in (1, 2, 3, 4)] == [
        False,
        False,
        True,
        False,
    ]
    assert watch.wedged
    assert watch.reason is not None
    assert watch.reason.startswith(
        "4 ReloadConfig calls in a row ran past their deadline while GetModelStatus"
    )
    assert "(last: ReloadConfig: DEADLINE_EXCEEDED #4)" in watch.reason
    assert "restart TF Serving" in watch.reason


def test_an_answer_starts_over() -> None:
    """cleared() reports whether it ended a wedge, and resets the count: the next deadline is number one."""
    watch = ReloadWatch(threshold=2)
    watch.deadline("a")
    assert watch.cleared() is False
    watch.deadline("b")
    assert not watch.wedged
    watch.deadline("c")
    assert watch.cleared() is True
    assert (watch.deadlines, watch.wedged, watch.reason) == (0, False, None)


def test_threshold_must_be_positive() -> None:
    """A threshold below one is refused naming the value."""
    with pytest.raises(ValueError, match="at least 1, got 0"):
        ReloadWatch(threshold=0)


def _agent(tmp_path: Path, *, liveness: bool, watch: ReloadWatch) -> Agent:
    settings = settings_from_mapping(
        {
            "serving": {"wedge_liveness": liveness, "model_config_file": str(tmp_path / "models.config")},
            "state_dir": str(tmp_path / "state"),
            "models": [{"name": "m", "source": "file:///bucket/m", "local_path": str(tmp_path / "m")}],
        }
    )
    return Agent(
        settings,
        serving=FakeServing(),
        open_source=lambda uri: InMemorySource(),
        read_uri=lambda uri: b"",
        registry=CollectorRegistry(),
        reload_watch=watch,
    )


@pytest.mark.parametrize("liveness", [True, False])
def test_the_agent_shows_the_watch(tmp_path: Path, liveness: bool) -> None:
    """The gauge and /status follow the client's watch; liveness is 503-worthy only with wedge_liveness."""
    watch = ReloadWatch(threshold=1)
    agent = _agent(tmp_path, liveness=liveness, watch=watch)
    gauge = lambda: agent.registry.get_sample_value("tfs_agent_reload_wedged", {"model": "m"})  # noqa: E731
    assert (gauge(), agent.tfserving_liveness()[0], agent.status()["tfserving"]["reload_wedged"]) == (
        0.0,
        True,
        False,
    )
    watch.deadline("ReloadConfig: DEADLINE_EXCEEDED")
    live, why = agent.tfserving_liveness()
    assert gauge() == 1.0
    assert agent.status()["tfserving"]["reason"] == watch.reason
    assert live is not liveness
    assert why == (
        watch.reason if liveness else "ok (serving.wedge_liveness is off: this endpoint always answers 200)"
    )
