"""The fleet's Prometheus metrics, on an injected registry: what a pod sees of its release and its slot.

``FleetMetrics.update(model, coordinator)`` after each observation; the alerts in docs/fleet.md use them
(version skew across pods, a release stuck in a phase, slot takeovers).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agent.core.fleet_records import Phase
from agent.fleet.coordinator import FleetCoordinator


class FleetMetrics:
    """One instance per registry; counters follow the coordinator's own running totals."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.revision = Gauge(
            "tfs_agent_fleet_release_revision", "The fleet release's revision.", ["model"], registry=registry
        )
        self.target = Gauge(
            "tfs_agent_fleet_target_version",
            "The version the fleet release moves to.",
            ["model"],
            registry=registry,
        )
        self.phase = Gauge(
            "tfs_agent_fleet_release_phase",
            "1 for the release's current phase (validating|canary|rolling|done|aborted), else 0.",
            ["model", "phase"],
            registry=registry,
        )
        self.slot_held = Gauge(
            "tfs_agent_fleet_slot_held", "1 while this pod holds a slot.", ["model"], registry=registry
        )
        self.live_pods = Gauge(
            "tfs_agent_fleet_live_pods", "Pods whose heartbeat is recent.", ["model"], registry=registry
        )
        self.record_problems = Gauge(
            "tfs_agent_fleet_record_problems",
            "Fleet records that do not parse.",
            ["model"],
            registry=registry,
        )
        self.events = Counter(
            "tfs_agent_fleet_events",
            "Lost compare-and-swaps (lost_race), 429s (rate_limited), slot takeovers by this pod (takeover) "
            "and slots this pod lost to one mid-step (slot_lost).",
            ["model", "event"],
            registry=registry,
        )
        self.draining = Gauge(
            "tfs_agent_draining",
            "1 while this pod is out of traffic for a load (fleet.drain), else 0.",
            ["model"],
            registry=registry,
        )
        self.drain_seconds = Histogram(
            "tfs_agent_drain_seconds",
            "Seconds out of traffic per drain: /readyz 503 until ready again (quiet wait, load, swap).",
            ["model"],
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
            registry=registry,
        )
        self.drain_wait_seconds = Histogram(
            "tfs_agent_drain_wait_seconds",
            "Seconds a drain waited for TF Serving's request counter to go quiet (at most fleet.drain.wait).",
            ["model"],
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60),
            registry=registry,
        )
        self.drains = Counter(
            "tfs_agent_drains",
            "Loads under a slot with fleet.drain on: drained, or in_place (too few other pods ready).",
            ["model", "how"],
            registry=registry,
        )
        self._seen: dict[tuple[str, str], int] = {}

    def update(self, model: str, coordinator: FleetCoordinator) -> None:
        """Set every gauge from the coordinator's last view and count what happened since the last call."""
        view = coordinator.view
        release = view.release
        if release is not None:
            self.revision.labels(model).set(release.revision)
            self.target.labels(model).set(release.target)
        for phase in Phase:
            self.phase.labels(model, phase.value).set(int(release is not None and release.phase is phase))
        self.slot_held.labels(model).set(int(view.mine is not None))
        self.live_pods.labels(model).set(len(view.live))
        self.record_problems.labels(model).set(len(view.problems))
        totals = {
            "lost_race": coordinator.lost_races,
            "rate_limited": coordinator.rate_limited,
            "takeover": coordinator.takeovers,
            "slot_lost": coordinator.slots_lost,
        }
        for event, total in totals.items():
            delta = total - self._seen.get((model, event), 0)
            if delta > 0:
                self.events.labels(model, event).inc(delta)
            self._seen[(model, event)] = total
