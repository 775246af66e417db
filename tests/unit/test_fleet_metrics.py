"""Fleet metrics read back from their registry: release, phase, slot held, live pods, takeovers, races."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agent.adapters.sources.base import CREATE_ONLY
from agent.adapters.sources.memory import MemoryRecordStore
from agent.core.fleet_records import RELEASE_NAME, LedgerEntry, Phase, Purpose, Release, encode
from agent.fleet import FleetCoordinator, FleetParams
from agent.fleet.metrics import FleetMetrics
from agent.infra.clock import ManualClock


def _pod(store: MemoryRecordStore, clock: ManualClock, name: str) -> FleetCoordinator:
    pod = FleetCoordinator(store, FleetParams(fleet="prod", pod=name, dead_after=40.0), clock)
    assert pod.heartbeat(LedgerEntry(name, 1, 0, "idle", None, 0.0))
    return pod


def test_metrics_follow_the_view_and_count_takeovers_and_lost_races() -> None:
    """An expired slot's taker shows it held, the phase, two live pods, one takeover and one lost race."""
    clock = ManualClock()
    store = MemoryRecordStore(clock)
    store.write(RELEASE_NAME, encode(Release(3, 2, 1, Phase.ROLLING, "", "op", 0.0)), expect=CREATE_ONLY)
    a = _pod(store, clock, "a")
    a.observe()
    assert a.take_slot(0, Purpose.ROLL, 2)
    clock.advance(32)
    b = _pod(store, clock, "b")
    assert b.observe().slot(0).expired
    assert b.take_slot(0, Purpose.ROLL, 2)
    a.observe()
    assert a.advance(Phase.ABORTED, "operator")  # b's view of the release is now stale
    assert not b.advance(Phase.DONE)
    b.observe()
    registry = CollectorRegistry()
    metrics = FleetMetrics(registry)
    metrics.update("m", b)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"model": "m", **labels})

    assert value("tfs_agent_fleet_release_revision") == 3
    assert value("tfs_agent_fleet_target_version") == 2
    assert value("tfs_agent_fleet_release_phase", phase="aborted") == 1
    assert value("tfs_agent_fleet_release_phase", phase="rolling") == 0
    assert value("tfs_agent_fleet_slot_held") == 1
    assert value("tfs_agent_fleet_live_pods") == 2
    assert value("tfs_agent_fleet_events_total", event="takeover") == 1
    assert value("tfs_agent_fleet_events_total", event="lost_race") == 1
    metrics.update("m", b)
    assert value("tfs_agent_fleet_events_total", event="takeover") == 1
