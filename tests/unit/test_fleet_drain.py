"""fleet.drain in the fleet pass, on fakes of our own ports: the pod holding a slot leaves the traffic for its
loads, unless fewer than min_ready other pods are ready by the ledger; unload-first only while drained; the
bake after the pod is back; a crash between unload and load recovered (ADR 25, 26)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agent.adapters.sources.base import CREATE_ONLY
from agent.adapters.sources.memory import MemoryRecordStore
from agent.adapters.tfserving.base import Tensors
from agent.core.domain import ServedModel, VersionState
from agent.core.fleet_records import (
    DRAINING,
    LedgerEntry,
    Purpose,
    Slot,
    decode,
    encode,
    ledger_name,
    slot_name,
)
from agent.fleet import FleetCoordinator, FleetParams
from agent.fleet.metrics import FleetMetrics
from agent.infra.clock import ManualClock
from agent.infra.config import ModelSettings
from agent.infra.metrics import AgentMetrics
from agent.infra.state import Pending, StateStore, Step
from agent.pipeline.golden_feed import GoldenFeed
from agent.pipeline.memory import MemoryBudget
from agent.pipeline.promotion import Recovery
from agent.pipeline.readiness import Readiness
from agent.pipeline.reconciler import FLEET_REJECTED, ModelReconciler, Outcome
from agent.pipeline.volume import volume_usage
from testkit.fakes_serving import FakeServing
from testkit.fakes_sources import InMemoryGoldenFile, InMemorySource
from tests.unit.test_reconciler import FILES, GOLDEN


class WatchedServing(FakeServing):
    """FakeServing that notes, for every config sent and every Predict, whether the pod was held out of
    traffic at that moment (``held``: the readiness reason, or None)."""

    def __init__(self) -> None:
        super().__init__()
        self.readiness: Readiness | None = None
        self.log: list[tuple[str, Any, str | None]] = []

    def _held(self) -> str | None:
        return self.readiness.held if self.readiness is not None else None

    def apply(self, changes: Mapping[str, ServedModel | None]) -> None:
        super().apply(changes)
        model = self.configured().get("m")
        shown = (model.versions, dict(model.labels)) if model is not None else None
        self.log.append(("apply", shown, self._held()))

    def predict(self, name: str, inputs: Tensors, **kwargs: Any) -> Any:
        self.log.append(("predict", (name, kwargs.get("label")), self._held()))
        return super().predict(name, inputs, **kwargs)


class FleetWorld:
    """Pod ``a`` of a fleet on an in-memory bucket; other pods exist only as ledger entries and slots."""

    def __init__(self, tmp_path: Path, *, drain: bool = True, min_ready: int = 1) -> None:
        self.local = tmp_path / "models" / "m"
        self.clock = ManualClock()
        self.source = InMemorySource("mem://bucket/m")
        self.serving = WatchedServing()
        self.state = StateStore(tmp_path / "state")
        self.registry = CollectorRegistry()
        self.store = MemoryRecordStore(self.clock)
        params = FleetParams(
            fleet="prod",
            pod="a",
            canary_bake=1.0,
            dead_after=3600.0,
            forget_after=7200.0,
            drain=drain,
            drain_wait=2.0,
            min_ready=min_ready,
        )
        self.coordinator = FleetCoordinator(self.store, params, self.clock)
        golden = InMemoryGoldenFile(json.dumps(GOLDEN).encode())
        settings = ModelSettings(
            name="m",
            source="file:///unused",
            local_path=self.local,
            golden="mem://bucket/golden.json",
            policy={"bake_time": "3s"},  # type: ignore[arg-type]
        )
        self.reconciler = ModelReconciler(
            settings,
            source=self.source,
            serving=self.serving,
            state=self.state,
            metrics=AgentMetrics(self.registry),
            clock=self.clock,
            golden=GoldenFeed("mem://bucket/golden.json", read=golden.read, stat=golden.stat),
            load_timeout=30,
            fleet=self.coordinator,
            fleet_metrics=FleetMetrics(self.registry),
        )
        self.serving.readiness = self.reconciler.readiness

    def publish(self, version: int) -> None:
        self.source.publish(version, FILES, model="m")
        self.serving.add_version(str(self.local), version)

    def other_pod(
        self, pod: str, *, serving: int | None = 1, ready: bool | None = True, phase: str = "idle"
    ) -> None:
        """Another pod's ledger entry, as its own heartbeat would write it."""
        entry = LedgerEntry(pod, serving, 0, phase, None, self.clock.time(), ready=ready)
        current = self.store.read(ledger_name(pod))
        self.store.write(ledger_name(pod), encode(entry), expect=current.token if current else CREATE_ONLY)

    def serve(self, version: int) -> None:
        """Start from ``version`` served by the whole fleet: its release run by this pod alone, undrained
        (nothing served before it), the log of what TF Serving saw cleared."""
        fleet = self.reconciler.fleet
        assert fleet is not None
        drain, fleet.drain = fleet.drain, None
        self.publish(version)
        self.until_serving(version)
        fleet.drain = drain
        assert self.state.get("m").serving == version
        self.serving.log.clear()

    def until_serving(self, version: int, passes: int = 6) -> list[Any]:
        results = []
        for _ in range(passes):
            results.append(self.reconciler.reconcile())
            if self.state.get("m").serving == version and self.state.get("m").pending is None:
                return results
        return results

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {"model": "m", **labels})

    def held_at(self, kind: str, match: Any) -> list[str | None]:
        return [held for k, what, held in self.serving.log if k == kind and match(what)]


def _loads(version: int) -> Any:
    return lambda shown: shown is not None and version in shown[0] and shown[1].get("stable") != version


def test_switch_drains_for_the_load_and_bakes_after_it_is_back(tmp_path: Path) -> None:
    """Another pod is ready: the swap to v2 (and the shadow validation) runs out of traffic with the reason
    on /readyz; the bake's probes through the label come after readiness is released."""
    world = FleetWorld(tmp_path)
    world.serve(1)
    world.other_pod("b")
    world.publish(2)
    world.until_serving(2)
    assert world.state.get("m").serving == 2
    # v2 loaded beside v1 (labels on v1) only while drained, with the reason /readyz gives
    assert set(world.held_at("apply", _loads(2))) == {"draining for the swap to v2"}
    assert set(world.held_at("predict", lambda w: w[0] == "m__candidate")) == {
        "draining for the shadow validation of v2"
    }
    # the smoke/canary probes through the label: after the pod is back in traffic
    bake = world.held_at("predict", lambda w: w == ("m", "stable"))
    assert bake
    assert set(bake) == {None}
    assert world.reconciler.check_ready() == (True, "ok")
    assert world.metric("tfs_agent_drains_total", how="drained") == 2
    assert world.metric("tfs_agent_draining") == 0
    assert world.metric("tfs_agent_drain_seconds_count") == 2
    status = world.reconciler.status()
    assert status["draining"] is None
    assert status["last_drain"] == "draining for the swap to v2"


def test_readyz_says_draining_while_the_load_runs(tmp_path: Path) -> None:
    """While the load is under way /readyz answers 503 with the reason, the gauge is 1, /status shows it,
    and the ledger says phase draining and not ready (so no other pod counts this one)."""
    world = FleetWorld(tmp_path)
    world.serve(1)
    world.other_pod("b")
    world.publish(2)
    seen: list[Any] = []
    real_wait = world.reconciler.promotion._wait

    def watching(version: int) -> None:
        if version == 2 and world.reconciler.promotion.pending is not None:
            entry = decode(LedgerEntry, world.store.read(ledger_name("a")).data, origin="a")  # type: ignore[union-attr]
            seen.append(
                (
                    world.reconciler.check_ready(),
                    world.metric("tfs_agent_draining"),
                    world.reconciler.status()["draining"],
                    (entry.phase, entry.ready),
                )
            )
        real_wait(version)

    world.reconciler.promotion._wait = watching  # type: ignore[method-assign]
    world.until_serving(2)
    reason = "draining for the swap to v2"
    assert seen == [((False, reason), 1.0, reason, (DRAINING, False))]


def test_too_few_other_pods_ready_swaps_in_place_and_says_why(tmp_path: Path) -> None:
    """min_ready 1, and the only other pod is unready by its ledger: no drain, the swap runs in place (as
    without fleet.drain), counted and shown in /status."""
    world = FleetWorld(tmp_path)
    world.serve(1)
    world.other_pod("b", ready=False)
    world.publish(2)
    world.until_serving(2)
    assert world.state.get("m").serving == 2
    assert set(world.held_at("apply", _loads(2))) == {None}
    assert world.reconciler.status()["last_drain"] == (
        "only 0 other pod(s) ready, fleet.drain.min_ready is 1: swapping in place"
    )
    assert world.metric("tfs_agent_drains_total", how="in_place") == 2  # validation and swap
    assert world.metric("tfs_agent_drains_total", how="drained") is None


@pytest.mark.parametrize(
    ("other", "why"),
    [
        ({"serving": None}, "serves nothing"),
        ({"phase": DRAINING}, "draining"),
        (
            {"ready": None, "phase": "idle"},
            "an old agent's entry (no ready field) counts by serving and phase",
        ),
    ],
)
def test_which_other_pods_count_as_ready(tmp_path: Path, other: dict[str, Any], why: str) -> None:
    """The ledger's answer: serving a version, not draining, not reported unready, holding no slot."""
    world = FleetWorld(tmp_path)
    world.other_pod("b", **other)
    world.reconciler.fleet.heartbeat()  # type: ignore[union-attr]
    expected = ("b",) if other.get("ready", True) is None else ()
    assert world.coordinator.ready_others() == expected, why


def test_a_slot_holder_is_not_counted_ready(tmp_path: Path) -> None:
    """Pod b holds a slot (it may be draining right now): it does not count, whatever its ledger says."""
    world = FleetWorld(tmp_path)
    world.other_pod("b")
    world.other_pod("c")
    world.reconciler.fleet.heartbeat()  # type: ignore[union-attr]
    world.store.write(
        slot_name(1), encode(Slot("b", 0, Purpose.ROLL, 2, world.clock.time())), expect=CREATE_ONLY
    )
    assert world.coordinator.ready_others() == ("c",)


def test_drain_off_never_holds_readiness(tmp_path: Path) -> None:
    world = FleetWorld(tmp_path, drain=False)
    world.serve(1)
    world.other_pod("b")
    world.publish(2)
    world.until_serving(2)
    assert world.state.get("m").serving == 2
    assert {held for _, _, held in world.serving.log} == {None}
    assert world.metric("tfs_agent_drains_total", how="drained") is None


def _limit_one_version(world: FleetWorld) -> None:
    """serving.memory_limit that holds one version of m, not two."""
    one = volume_usage([world.local / "1"])
    world.reconciler.candidate.memory = MemoryBudget(int(one * 1.5), 1.0)


def _both_loaded(world: FleetWorld) -> list[Any]:
    return [shown for k, shown, _ in world.serving.log if k == "apply" and shown and len(shown[0]) > 1]


def test_unload_first_when_drained_and_only_one_version_fits(tmp_path: Path) -> None:
    """2x does not fit, the pod is drained: the shadow is validated with v1 unloaded first, then v1 goes and
    v2 loads alone; never two versions of m at once, and every unload-first step runs out of traffic."""
    world = FleetWorld(tmp_path)
    world.serve(1)
    _limit_one_version(world)
    world.other_pod("b")
    world.publish(2)
    world.until_serving(2)
    assert world.state.get("m").serving == 2
    applied = [(shown, held) for k, shown, held in world.serving.log if k == "apply"]
    assert [shown for shown, _ in applied if shown is not None] == [
        ((1,), {}),  # v1 back alone after the shadow's validation, then its label
        ((1,), {"stable": 1}),
        ((2,), {}),  # the swap: v1 out first, v2 alone, then the label
        ((2,), {"stable": 2}),
    ]
    assert None not in {held for _, held in applied}


def test_unload_first_refused_when_not_drained(tmp_path: Path) -> None:
    """2x does not fit and no other pod is ready: refused with the reason (a retry), v1 keeps serving."""
    world = FleetWorld(tmp_path)
    world.serve(1)
    _limit_one_version(world)
    world.other_pod("b", ready=False)
    world.publish(2)
    result = world.reconciler.reconcile()
    assert result.outcome is Outcome.RETRY
    assert "only a drained pod may do (fleet.drain; not drained: only 0 other pod(s) ready" in result.detail
    assert world.state.get("m").serving == 1
    assert world.serving.configured()["m"].versions == (1,)
    assert world.metric("tfs_agent_errors_total", stage="memory", error="MemoryLimitError") == 1


def test_crash_between_unload_and_load_is_undone_unload_first(tmp_path: Path) -> None:
    """The agent dies after LOAD_ALONE removed v1 and asked for v2: the restarted pass puts v1 back alone
    (v2 out first, labels once v1 is AVAILABLE), never both at once."""
    world = FleetWorld(tmp_path)
    world.serve(1)
    world.publish(2)
    (world.local / "2").mkdir()
    with world.state.update("m") as record:
        record.pending = Pending(2, 1, Step.LOAD_ALONE, world.clock.time())
    world.serving.apply({"m": None})
    world.serving.apply({"m": ServedModel("m", str(world.local), (2,))})
    world.serving.log.clear()
    done = world.reconciler.promotion.recover()
    assert done is not None
    assert done.outcome is Recovery.UNDONE
    assert world.state.get("m").pending is None
    assert world.state.get("m").serving == 1
    configs = [shown for k, shown, _ in world.serving.log if k == "apply"]
    assert configs == [None, ((1,), {}), ((1,), {"stable": 1})]
    assert world.serving.available("m") == [1]


def test_crash_after_unload_first_load_keeps_nothing_half_done(tmp_path: Path) -> None:
    """Crash after v2 became AVAILABLE alone but before the labels moved: undone the same way (LOAD_ALONE
    never counts as finished: the labels never reached v2)."""
    world = FleetWorld(tmp_path)
    world.serve(1)
    world.publish(2)
    with world.state.update("m") as record:
        record.pending = Pending(2, 1, Step.LOAD_ALONE, world.clock.time())
    world.serving.apply({"m": None})
    world.serving.apply({"m": ServedModel("m", str(world.local), (2,))})
    assert {s.version: s.state for s in world.serving.status("m")}[2] is VersionState.AVAILABLE
    world.serving.log.clear()
    world.reconciler.promotion.recover()
    assert _both_loaded(world) == []
    assert world.state.get("m").serving == 1
    assert world.serving.available("m") == [1]


def test_fleet_roll_back_leaves_no_local_quarantine(tmp_path: Path) -> None:
    """A fleet ROLL_BACK: the fleet's verdict is the quarantine; none is written locally (fleet clear lifts
    the verdict, and a local copy would outlive it)."""
    world = FleetWorld(tmp_path, drain=False)
    world.serve(1)
    world.publish(2)
    world.until_serving(2)
    assert world.state.get("m").serving == 2
    world.coordinator.observe()
    assert world.coordinator.abort("operator says no", stage="operator")
    world.reconciler.reconcile()
    assert world.state.get("m").serving == 1
    assert world.state.get("m").quarantined == {}
    assert 2 in world.reconciler.fleet.rejected()  # type: ignore[union-attr]
    assert world.reconciler.status()["quarantined"] == {"2": FLEET_REJECTED}  # shown, from the verdict


def test_slot_lost_mid_swap_keeps_the_new_version_and_counts_it(tmp_path: Path) -> None:
    """The slot was taken over while the swap ran: the pod keeps the version it loaded (ADR 26) and the
    event is counted as slot_lost."""
    world = FleetWorld(tmp_path, drain=False)
    world.serve(1)
    world.publish(2)
    fleet = world.reconciler.fleet
    assert fleet is not None
    real = world.reconciler.candidate.swap_in

    def swap_and_lose(version: int, *, alone: bool = False) -> int | None:
        old = real(version, alone=alone)
        keeper_lost.append(version)
        return old

    keeper_lost: list[int] = []
    world.reconciler.candidate.swap_in = swap_and_lose  # type: ignore[method-assign]

    import agent.pipeline.fleet_pass as fleet_pass

    class LostKeeper(fleet_pass.SlotKeeper):
        def __exit__(self, *exc: object) -> None:
            super().__exit__(*exc)  # type: ignore[arg-type]
            if keeper_lost:
                self.lost.set()

    original = fleet_pass.SlotKeeper
    fleet_pass.SlotKeeper = LostKeeper  # type: ignore[misc]
    try:
        world.until_serving(2)
    finally:
        fleet_pass.SlotKeeper = original  # type: ignore[misc]
    assert world.state.get("m").serving == 2
    world.reconciler.fleet_metrics.update("m", world.coordinator)  # type: ignore[union-attr]
    assert world.metric("tfs_agent_fleet_events_total", event="slot_lost") == 1


def test_fleet_roll_back_goes_unload_first_when_both_do_not_fit(tmp_path: Path) -> None:
    """After an unload-first release the fleet aborts: v1 beside v2 does not fit either, so the ROLL_BACK is
    unload-first too, out of traffic while another pod is ready; never both versions at once."""
    world = FleetWorld(tmp_path)
    world.serve(1)
    _limit_one_version(world)
    world.other_pod("b")
    world.publish(2)
    world.until_serving(2)
    world.serving.log.clear()
    world.coordinator.observe()
    assert world.coordinator.abort("operator says no", stage="operator")
    world.reconciler.reconcile()
    assert world.state.get("m").serving == 1
    assert _both_loaded(world) == []
    applied = [(shown, held) for k, shown, held in world.serving.log if k == "apply"]
    assert {held for _, held in applied} == {"draining to roll back to v1"}
    assert dict(world.serving.configured()["m"].labels) == {"stable": 1}
