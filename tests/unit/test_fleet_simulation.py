"""Whole small fleets on a simulated clock: the real protocol rolls, stops at the canary, survives deaths."""

from __future__ import annotations

from agent.core.fleet_records import Phase
from agent.fleet import Action, FleetParams
from agent.fleet.simulation import SimPod, Simulation

PARAMS = FleetParams(fleet="prod", pod="-", max_unavailable=2, canary=1, canary_bake=60.0)


def _settled(sim: Simulation, phase: Phase, version: int) -> bool:
    release = sim.release()
    return release is not None and release.target == version and release.phase is phase


def _fleet(pods: int = 6, **kwargs: object) -> Simulation:
    sim = Simulation(pods, PARAMS, seed=7, **kwargs)  # type: ignore[arg-type]
    sim.run_until(lambda: False, limit=20)
    return sim


def test_a_good_release_reaches_every_pod_validated_once_two_at_a_time() -> None:
    """v2 ends on all six pods, validated once for the fleet, never more than max_unavailable loading."""
    sim = _fleet()
    sim.publish(2)
    sim.run_until(lambda: _settled(sim, Phase.DONE, 2), limit=2000)
    assert _settled(sim, Phase.DONE, 2)
    assert [p.serving for p in sim.pods] == [2] * 6
    assert dict(sim.observed.validations) == {2: 1}
    assert sim.observed.max_loading <= 2
    assert [phase for _, _, phase in sim.observed.phases] == ["validating", "canary", "rolling", "done"]


def test_a_version_failing_on_live_traffic_stops_at_the_canary() -> None:
    """v3 fails its canary bake: only the canary ever served it, it rolled back, v3 is rejected for all."""
    sim = _fleet()
    sim.publish(2)
    sim.run_until(lambda: _settled(sim, Phase.DONE, 2), limit=2000)
    sim.publish(3, bad_at="canary")
    sim.run_until(
        lambda: _settled(sim, Phase.ABORTED, 3) and all(p.serving == 2 for p in sim.pods), limit=2000
    )
    assert [p.serving for p in sim.pods] == [2] * 6
    assert sum(3 in p.served for p in sim.pods) == 1
    assert 3 in sim.pods[0].coordinator.observe().rejected
    sim.run_until(lambda: False, limit=300)
    assert sum(3 in p.served for p in sim.pods) == 1  # nobody tries it again


def test_a_version_failing_validation_reaches_no_pod() -> None:
    """v2 fails the fleet's one validation: no pod serves it, the release is aborted, nobody retries it."""
    sim = _fleet()
    sim.publish(2, bad_at="validation")
    sim.run_until(lambda: _settled(sim, Phase.ABORTED, 2), limit=2000)
    sim.run_until(lambda: False, limit=300)
    assert not any(2 in p.served for p in sim.pods)
    assert dict(sim.observed.validations) == {2: 1}


def test_a_slot_holder_killed_mid_swap_does_not_stop_the_rollout() -> None:
    """Its slot expires and is taken over; the release finishes on the live pods without it."""
    sim = _fleet()
    sim.publish(2)

    def switching() -> SimPod | None:
        rolling = _settled(sim, Phase.ROLLING, 2)
        return next((p for p in sim.pods if rolling and p.task and p.task.step.action is Action.SWITCH), None)

    sim.run_until(lambda: switching() is not None, limit=2000)
    victim = switching()
    assert victim is not None
    sim.kill(victim)
    sim.run_until(lambda: _settled(sim, Phase.DONE, 2), limit=3000)
    assert _settled(sim, Phase.DONE, 2)
    assert all(p.serving == 2 for p in sim.pods if p.alive)
    assert victim.serving == 1


def test_a_pod_joining_mid_rollout_goes_straight_to_the_target() -> None:
    """A new pod with an empty volume loads the fleet's last good version, then follows the release."""
    sim = _fleet()
    sim.publish(2)
    sim.run_until(lambda: _settled(sim, Phase.ROLLING, 2), limit=2000)
    newcomer = sim.add_pod(serving=None)
    sim.run_until(lambda: _settled(sim, Phase.DONE, 2), limit=3000)
    assert newcomer.serving == 2
    assert all(p.serving == 2 for p in sim.pods)


def test_skewed_pod_clocks_still_roll_within_max_unavailable() -> None:
    """Pods whose clocks are up to ten minutes off the store's still roll one slot at a time."""
    sim = _fleet(skew=600.0)
    sim.publish(2)
    sim.run_until(lambda: _settled(sim, Phase.DONE, 2), limit=2000)
    assert [p.serving for p in sim.pods] == [2] * 6
    assert sim.observed.max_loading <= 2


def test_a_canary_killed_during_its_bake_is_replaced_by_the_next_pod() -> None:
    """The dead canary's slot expires and another pod canaries; the release still reaches every live pod."""
    sim = _fleet()
    sim.publish(2)

    def baking() -> SimPod | None:
        return next((p for p in sim.pods if p.task and p.task.step.action is Action.BAKE), None)

    sim.run_until(lambda: baking() is not None, limit=2000)
    canary = baking()
    assert canary is not None
    sim.kill(canary)
    sim.run_until(lambda: _settled(sim, Phase.DONE, 2), limit=3000)
    release = sim.release()
    assert release is not None
    assert release.phase is Phase.DONE
    assert canary.name not in release.canaries
    assert len(release.baked) == 1
    assert all(p.serving == 2 for p in sim.pods if p.alive)


def test_a_cleared_verdict_lets_the_same_version_be_released_again() -> None:
    """After `fleet clear`, the pods' own policy starts a new release of the version it rejected."""
    sim = _fleet()
    sim.publish(2, bad_at="validation")
    sim.run_until(lambda: _settled(sim, Phase.ABORTED, 2), limit=2000)
    sim.bad_at.clear()  # the environment was fixed (say, the golden file)
    sim.run_until(lambda: False, limit=5)  # more than the store's one mutation per object per second
    record = sim.store.read("verdicts/2.json")
    assert record is not None
    sim.store.delete(record.name, expect=record.token)
    sim.run_until(lambda: _settled(sim, Phase.DONE, 2), limit=3000)
    assert [p.serving for p in sim.pods] == [2] * 6
    assert dict(sim.observed.validations) == {2: 2}
