"""A pass for a model in a fleet: observe → decide → apply | pipeline step, until IDLE or WAIT.

docs/fleet.md "Wiring it into the pipeline". The bucket-only steps are the coordinator's; the pipeline's are
VALIDATE (stage + shadow validation, once for the fleet), SWITCH (stage + two-step swap, no second shadow
validation: loading beside the old version is the pod's check), BAKE (the canary on live traffic) and
ROLL_BACK. A pod-local failure (a load timeout) is this pod's retry with backoff, shown in the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext

from agent.core.domain import Manifest
from agent.core.errors import AgentError, ServingUnavailableError
from agent.core.fleet_records import LedgerEntry, Phase
from agent.core.golden import Golden
from agent.fleet import Action, FleetCoordinator, FleetStep, FleetView, PodState, decide
from agent.fleet.keeper import SlotKeeper
from agent.infra.clock import Clock
from agent.infra.logs import event
from agent.pipeline.candidate import Candidate
from agent.pipeline.report import Outcome, PassResult

log = logging.getLogger(__name__)

_PIPELINE = (Action.VALIDATE, Action.SWITCH, Action.BAKE, Action.ROLL_BACK)
_MAX_STEPS = 40  # a pass ends after this many steps even if the fleet keeps moving; the next goes on
_BACKOFF_FIRST, _BACKOFF_MAX = 5.0, 300.0
UNSETTLED = (Phase.VALIDATING, Phase.CANARY, Phase.ROLLING)

LiveBake = Callable[[int, float], str | None]
"""(version, seconds) → a problem, or None: the canary's bake on live traffic."""


class FleetPass:
    """One model's fleet steps on this pod; keeps the pod's local phase, error and retry delay."""

    def __init__(
        self, coordinator: FleetCoordinator, candidate: Candidate, clock: Clock, live_bake: LiveBake
    ) -> None:
        self.coordinator, self.candidate, self.clock = coordinator, candidate, clock
        self.live_bake = live_bake
        self.phase: str = "idle"
        self.last_error: str | None = None
        self.retry_at, self.failures = 0.0, 0
        self.name = candidate.name

    # ---- the ledger ----

    def serving(self) -> int | None:
        return self.candidate.state.get(self.name).serving

    def heartbeat(self) -> bool:
        """Rewrite this pod's ledger entry (the scheduler's heartbeat job, and the first step of a pass)."""
        view = self.coordinator._view
        revision = view.release.revision if view and view.release else 0
        entry = LedgerEntry(
            self.coordinator.params.pod,
            self.serving(),
            revision,
            self.phase,
            self.last_error,
            self.clock.time(),
        )
        return self.coordinator.heartbeat(entry)

    def unsettled(self) -> bool:
        """A release is under way (the pass should look again soon, not at the schedule's interval)."""
        view = self.coordinator._view
        return bool(view and view.release and view.release.phase in UNSETTLED)

    def rejected(self) -> frozenset[int]:
        view = self.coordinator._view
        return view.rejected if view else frozenset()

    # ---- the pass ----

    def run(
        self, version: int | None, complete: Mapping[int, Manifest], golden: Callable[[], Golden | None]
    ) -> PassResult:
        """Steps until IDLE or WAIT; ``version`` is what this pod's own policy would release now."""
        result = PassResult(self.name, Outcome.IDLE, self.serving(), "fleet: idle")
        for _ in range(_MAX_STEPS):
            pod = PodState(self.serving(), version, backoff=self.clock.time() < self.retry_at)
            view = self.coordinator.observe(pod)
            step = decide(view, pod)
            if step.action in (Action.IDLE, Action.WAIT):
                outcome = Outcome.IDLE if step.action is Action.IDLE else Outcome.WAITING
                return _settle(result, outcome, step.reason)
            if step.action is Action.HEARTBEAT:
                self.heartbeat()
            elif step.action in _PIPELINE:
                try:
                    result = self._step(step, view, complete, golden)
                except AgentError:
                    self._yield_slot()
                    raise
                self.heartbeat()
            elif not self.coordinator.apply(step, pod):
                event(log, "fleet: lost a race; observing again", model=self.name, step=step.action)
        return _settle(result, Outcome.WAITING, "fleet: more steps next pass")

    def _step(
        self,
        step: FleetStep,
        view: FleetView,
        complete: Mapping[int, Manifest],
        golden: Callable[[], Golden | None],
    ) -> PassResult:
        event(log, "fleet step", model=self.name, step=step.action, version=step.version, reason=step.reason)
        version = step.version
        assert version is not None
        if step.action is Action.VALIDATE:
            return self._validate(version, complete.get(version), golden(), view)
        if step.action is Action.SWITCH:
            return self._switch(version, complete.get(version), golden(), view, step.reason)
        if step.action is Action.BAKE:
            return self._bake(version)
        return self._roll_back(version, step.reason)

    def _yield_slot(self) -> None:
        """A step ending in a retry (TF Serving or the bucket unreachable) gives its slot back, so a pod
        that can go on takes it now instead of after slot_ttl."""
        if self.coordinator.view.mine is not None:
            self.coordinator.release_slot()
        self.phase = "idle"

    def _keeper(self, view: FleetView) -> AbstractContextManager[object]:
        return SlotKeeper(self.coordinator) if view.mine is not None else nullcontext()

    def _validate(
        self, version: int, manifest: Manifest | None, golden: Golden | None, view: FleetView
    ) -> PassResult:
        self.phase = "validating"
        with self._keeper(view):
            try:
                self.candidate._stage(version, manifest, golden)
            except AgentError as err:
                if err.retryable:
                    raise
                self.coordinator.record_verdict(version, False, f"staging: {err.reason}")
                return self.candidate._reject(version, f"staging: {err.reason}", "quarantined")
            verdict = self.candidate._validate(version, golden)
        self.phase = "idle"
        self.coordinator.record_verdict(version, verdict.ok, verdict.reason)
        if not verdict.ok:
            reason = f"validation: {verdict.reason}"
            self.candidate.reporter.rejected(version, reason, "rejected")
            return PassResult(self.name, Outcome.REJECTED, version, reason)
        return PassResult(self.name, Outcome.WAITING, self.serving(), f"{version} validated for the fleet")

    def _switch(
        self,
        version: int,
        manifest: Manifest | None,
        golden: Golden | None,
        view: FleetView,
        reason: str,
    ) -> PassResult:
        self.phase = "switching"
        old = self.serving()
        with self._keeper(view) as keeper:
            try:
                self.candidate._stage(version, manifest, golden)
                # A canary's check is its BAKE on live traffic, the next step: here one look only.
                bake = 0.0 if reason == "canary" else None
                result = self.candidate.switch(version, golden, bake=bake)
            except ServingUnavailableError:
                raise
            except AgentError as err:
                return self._pod_failure(version, f"load: {err.reason}")
        lost = isinstance(keeper, SlotKeeper) and keeper.lost.is_set()
        if result.outcome is Outcome.ROLLED_BACK:
            return self._pod_failure(version, result.detail, result)
        self.phase, self.last_error, self.failures, self.retry_at = "idle", None, 0, 0.0
        if lost:
            event(log, "fleet: slot taken over during the swap", level=logging.WARNING, model=self.name)
        event(log, "fleet: switched", model=self.name, version=version, previous=old)
        return result

    def _pod_failure(self, version: int, reason: str, result: PassResult | None = None) -> PassResult:
        """This pod's own failure: a retry after a growing delay, shown in the ledger, never a verdict."""
        self.failures += 1
        delay = min(_BACKOFF_FIRST * 2 ** (self.failures - 1), _BACKOFF_MAX)
        self.retry_at = self.clock.time() + delay
        error = f"{version}: {reason} (retry in {delay:g}s)"
        self.phase, self.last_error = "backoff", error
        self.coordinator.release_slot()
        event(log, "fleet: pod-local failure", level=logging.WARNING, model=self.name, error=error)
        return result or PassResult(self.name, Outcome.RETRY, self.serving(), error)

    def _bake(self, version: int) -> PassResult:
        self.phase = "baking"
        seconds = self.coordinator.params.canary_bake
        with SlotKeeper(self.coordinator):
            problem = self.live_bake(version, seconds)
        self.phase = "idle"
        self.coordinator.finish_canary(problem is None, problem or "baked on live traffic")
        if problem:
            return PassResult(self.name, Outcome.ROLLED_BACK, version, f"canary bake: {problem}")
        return PassResult(self.name, Outcome.PROMOTED, version, f"canary {version} baked")

    def _roll_back(self, good: int, reason: str) -> PassResult:
        bad = self.serving()
        self.phase = "rolled_back"
        self.candidate.promotion.roll_back(bad if bad is not None else good, good, f"fleet: {reason}")
        self.candidate.reporter.rolled_back(bad or good, good, "fleet_aborted")
        return PassResult(self.name, Outcome.ROLLED_BACK, good, f"fleet rolled back to {good}: {reason}")


def _settle(result: PassResult, outcome: Outcome, reason: str) -> PassResult:
    """The pass's result: what a pipeline step did, else the fleet's idle or wait."""
    if result.outcome is not Outcome.IDLE:
        return result
    return PassResult(result.model, outcome, result.version, reason)
