"""What this pod should do next for one model's fleet: a pure function of the view and the pod's own state.

``decide(view, pod)`` returns one ``FleetStep``. Steps that only touch the bucket (start a release, take or
release a slot, join the canaries, arrive, advance, abort, heartbeat) are carried out by
``FleetCoordinator.apply``; the rest (VALIDATE, SWITCH, BAKE, ROLL_BACK) are the pipeline's work, after which
it reports back (``record_verdict``, ``finish_canary``, ``arrive``). Then observe and decide again, until the
step is IDLE or WAIT. docs/fleet.md has the state diagram.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.core.fleet_records import Phase, Purpose, Release
from agent.fleet.view import FleetView

_LAST_GOOD = "new pod: the fleet's last good version"


class Action(enum.StrEnum):
    IDLE = "idle"
    """Nothing to do: serve what is served."""
    WAIT = "wait"
    """Someone else's turn (slots full, a canary baking, validation elsewhere, an unreadable record)."""
    HEARTBEAT = "heartbeat"
    """Write this pod's ledger entry first (it is the pod's clock reference and its liveness)."""
    START_RELEASE = "start_release"
    TAKE_SLOT = "take_slot"
    RELEASE_SLOT = "release_slot"
    VALIDATE = "validate"
    """Pipeline: stage and validate ``version`` in the shadow model, then ``record_verdict``."""
    JOIN_CANARY = "join_canary"
    SWITCH = "switch"
    """Pipeline: two-step swap to ``version`` (its load is the pod's own check), then observe again."""
    BAKE = "bake"
    """Pipeline: bake ``version`` on live traffic for canary_bake, then ``finish_canary(ok, reason)``."""
    ARRIVE = "arrive"
    ROLL_BACK = "roll_back"
    """Pipeline: swap back to ``version`` (the release's previous), no slot needed."""
    ADVANCE = "advance"
    ABORT = "abort"


@dataclass(frozen=True)
class FleetStep:
    action: Action
    version: int | None = None
    slot: int | None = None
    purpose: Purpose | None = None
    phase: Phase | None = None
    reason: str = ""


@dataclass(frozen=True)
class PodState:
    """What the pipeline knows about this pod's own model."""

    serving: int | None
    candidate: int | None = None
    """The version this pod's policy would release now (complete, newer, inside window and min_interval),
    or None. Policies decide when a *release* starts, never whether a pod catches up."""
    backoff: bool = False
    """A pod-local failure (a load timeout) is waiting out its retry delay: a pod retry, never a verdict."""


def decide(view: FleetView, pod: PodState) -> FleetStep:
    """The next step for this pod."""
    if view.reference is None:
        return FleetStep(Action.HEARTBEAT, reason="no heartbeat of this pod in the ledger yet")
    if view.release_error:
        return FleetStep(Action.WAIT, reason=f"keeping what is served: {view.release_error}")
    release = view.release
    if release is None:
        return _start(view, pod, None) or _idle(view)
    if release.target in view.rejected and release.phase is not Phase.ABORTED:
        return FleetStep(Action.ABORT, version=release.target, reason=f"version {release.target} is rejected")
    if release.phase is Phase.VALIDATING:
        return _validating(view, pod, release)
    if release.phase is Phase.CANARY:
        return _canary(view, pod, release)
    if release.phase is Phase.ROLLING:
        return _rolling(view, pod, release)
    if release.phase is Phase.DONE:
        return _start(view, pod, release) or _follow(view, pod, release, release.target) or _idle(view)
    return _aborted(view, pod, release)


def _idle(view: FleetView) -> FleetStep:
    if view.mine is not None:
        return FleetStep(Action.RELEASE_SLOT, slot=view.mine.index, reason="no longer needed")
    return FleetStep(Action.IDLE)


def _start(view: FleetView, pod: PodState, release: Release | None) -> FleetStep | None:
    """A new release, if this pod's policy found a candidate the fleet has neither rejected nor targeted."""
    version = pod.candidate
    if version is None or version in view.rejected:
        return None
    if release is not None and release.pinned:
        return None
    if release is not None and version == release.target and release.phase is not Phase.ABORTED:
        return None  # already the fleet's target; an aborted one whose verdict was cleared may go again
    return FleetStep(Action.START_RELEASE, version=version, reason=f"new candidate {version}")


def _own_slot(view: FleetView, release: Release, index: int | None = None) -> bool:
    mine = view.mine
    return (
        mine is not None
        and mine.slot is not None
        and mine.slot.revision == release.revision
        and (index is None or mine.index == index)
    )


def _take(view: FleetView, purpose: Purpose, version: int, only: int | None = None) -> FleetStep:
    free = view.free_slot()
    if free is None or (only is not None and free.index != only):
        holders = sorted({s.holder for s in view.slots if s.holder})
        return FleetStep(Action.WAIT, reason=f"all {view.capacity} slot(s) held ({', '.join(holders)})")
    return FleetStep(Action.TAKE_SLOT, version=version, slot=free.index, purpose=purpose)


def _stale_slot(view: FleetView, release: Release) -> FleetStep | None:
    """A slot held for an earlier revision is given back before anything else."""
    if view.mine is not None and not _own_slot(view, release):
        return FleetStep(Action.RELEASE_SLOT, slot=view.mine.index, reason="held for an earlier release")
    return None


def _newcomer(view: FleetView, pod: PodState, release: Release) -> FleetStep | None:
    """A pod serving nothing takes no traffic: it loads the last good version at once, without a slot; in a
    fleet's first release (nothing to fall back to) it takes part in validation, then loads the target."""
    if pod.serving is not None:
        return None
    if release.previous is not None:
        return FleetStep(Action.SWITCH, version=release.previous, reason=_LAST_GOOD)
    if release.phase is Phase.VALIDATING:
        return None
    return FleetStep(Action.SWITCH, version=release.target, reason="first release: nothing to fall back to")


def _validating(view: FleetView, pod: PodState, release: Release) -> FleetStep:
    stale = _stale_slot(view, release) or _newcomer(view, pod, release)
    if stale:
        return stale
    if _own_slot(view, release, 0):
        return FleetStep(Action.VALIDATE, version=release.target, reason="validating once for the fleet")
    return _take(view, Purpose.VALIDATE, release.target, only=0)


def _canaries(view: FleetView, release: Release) -> tuple[str, ...]:
    """Canaries still in the game: baked, or alive (a dead canary's place goes to the next pod)."""
    return tuple(c for c in release.canaries if c in release.baked or c in view.live)


def _canary(view: FleetView, pod: PodState, release: Release) -> FleetStep:
    stale = _stale_slot(view, release)
    if stale:
        return stale
    canaries = _canaries(view, release)
    if len(release.baked) >= view.params.canary:
        baked = f"{len(release.baked)} canary(ies) baked"
        return FleetStep(Action.ADVANCE, phase=Phase.ROLLING, reason=baked)
    if view.pod in release.baked:
        return _idle(view) if view.mine else FleetStep(Action.WAIT, reason="other canaries baking")
    if view.pod in canaries:
        return _canary_turn(view, pod, release)
    newcomer = _newcomer(view, pod, release)
    if newcomer:
        return newcomer
    if len(canaries) >= view.params.canary:
        return _idle(view) if view.mine else FleetStep(Action.WAIT, reason=f"canary bake of {release.target}")
    if _own_slot(view, release, 0):
        return FleetStep(Action.JOIN_CANARY, version=release.target, slot=0)
    return _take(view, Purpose.CANARY, release.target, only=0)


def _canary_turn(view: FleetView, pod: PodState, release: Release) -> FleetStep:
    if not _own_slot(view, release, 0):
        return _take(view, Purpose.CANARY, release.target, only=0)
    if pod.serving != release.target:
        return FleetStep(Action.SWITCH, version=release.target, reason="canary")
    return FleetStep(Action.BAKE, version=release.target, reason=f"canary bake {view.params.canary_bake:g}s")


def _follow(view: FleetView, pod: PodState, release: Release, version: int) -> FleetStep | None:
    """Move to ``version`` in turn, holding a slot; None once there and nothing is left to do."""
    stale = _stale_slot(view, release)
    if stale:
        return stale
    if pod.serving == version:
        if release.phase is Phase.ROLLING and view.pod not in view.arrived:
            return FleetStep(Action.ARRIVE, version=version)
        return None if view.mine is None else _idle(view)
    if pod.backoff:
        return FleetStep(Action.WAIT, reason="pod-local retry pending")
    if pod.serving is None:
        return FleetStep(Action.SWITCH, version=version, reason="new pod: straight to the release's target")
    if _own_slot(view, release):
        return FleetStep(Action.SWITCH, version=version, reason="my turn")
    return _take(view, Purpose.ROLL, version)


def _rolling(view: FleetView, pod: PodState, release: Release) -> FleetStep:
    step = _follow(view, pod, release, release.target)
    if step is not None:
        return step
    behind = view.live - view.arrived
    if not behind:
        return FleetStep(Action.ADVANCE, phase=Phase.DONE, reason=f"all {len(view.live)} live pods arrived")
    return FleetStep(Action.IDLE, reason=f"{len(behind)} pod(s) still to move")


def _aborted(view: FleetView, pod: PodState, release: Release) -> FleetStep:
    if view.mine is not None:
        return FleetStep(Action.RELEASE_SLOT, slot=view.mine.index, reason="release aborted")
    if pod.serving == release.target and release.previous is not None:
        return FleetStep(Action.ROLL_BACK, version=release.previous, reason=release.reason)
    start = _start(view, pod, release)
    if start:
        return start
    if pod.serving is None and release.previous is not None:
        return FleetStep(Action.SWITCH, version=release.previous, reason=_LAST_GOOD)
    return FleetStep(Action.IDLE)
