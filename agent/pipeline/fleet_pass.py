"""A pass for a model in a fleet: observe → decide → apply | pipeline step, until IDLE or WAIT.

docs/fleet.md "How the pipeline runs it". The bucket-only steps are the coordinator's; the pipeline's are
VALIDATE (stage + shadow validation, once for the fleet), SWITCH (stage + two-step swap, no second shadow
validation: loading beside the old version is the pod's check), BAKE (the canary on live traffic) and
ROLL_BACK. A pod-local failure (a load timeout) is this pod's retry with backoff, shown in the ledger.

With ``fleet.drain`` a pod holding a slot leaves the traffic for its loads (ADR 25): /readyz 503 naming the
reason, a wait until TF Serving's request counter is quiet, the load (beside the old version, or unload-first
when only one fits in serving.memory_limit), the labels, ready again — and only then the bake on live
traffic. It stays in traffic (swapping in place, as without a drain) when fewer than ``min_ready`` other
pods are ready by the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext

from agent.adapters.tfserving.monitoring import scrape
from agent.core.domain import Manifest, Verdict
from agent.core.errors import AgentError, MemoryLimitError, ServingUnavailableError
from agent.core.fleet_records import DRAINING, LedgerEntry, Phase
from agent.core.golden import Golden
from agent.fleet import Action, FleetCoordinator, FleetStep, FleetView, PodState, decide
from agent.fleet.keeper import SlotKeeper
from agent.fleet.metrics import FleetMetrics
from agent.infra.clock import Clock
from agent.infra.logs import event
from agent.pipeline.candidate import Candidate, RollBack
from agent.pipeline.drain import Drain, RequestCount
from agent.pipeline.readiness import Readiness
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
        self,
        coordinator: FleetCoordinator,
        candidate: Candidate,
        clock: Clock,
        live_bake: LiveBake,
        *,
        readiness: Readiness | None = None,
        monitoring_url: str | None = None,
        metrics: FleetMetrics | None = None,
    ) -> None:
        """``readiness``: the model's /readyz answer, written to the ledger on every heartbeat and held by
        the drain; ``monitoring_url``: TF Serving's Prometheus endpoint, whose request counter tells the
        drain when the traffic has gone (without it the drain waits the whole ``fleet.drain.wait``)."""
        self.coordinator, self.candidate, self.clock = coordinator, candidate, clock
        self.live_bake, self.readiness, self.metrics = live_bake, readiness, metrics
        self.phase: str = "idle"
        self.last_error: str | None = None
        self.retry_at, self.failures = 0.0, 0
        self.name = candidate.name
        params = coordinator.params
        self.drain = (
            Drain(
                readiness,
                clock=clock,
                wait=params.drain_wait,
                requests=_request_count(monitoring_url, self.name) if monitoring_url else None,
            )
            if params.drain and readiness is not None
            else None
        )
        self.last_drain: str | None = None
        """What the last load under a slot did about traffic: drained (and why), or why in place."""

    # ---- the ledger ----

    def serving(self) -> int | None:
        return self.candidate.state.get(self.name).serving

    def heartbeat(self) -> bool:
        """Rewrite this pod's ledger entry (the scheduler's heartbeat job, and the first step of a pass),
        with this model's readiness: other pods count ready pods from it before they drain."""
        view = self.coordinator.last_view
        revision = view.release.revision if view and view.release else 0
        entry = LedgerEntry(
            self.coordinator.params.pod,
            self.serving(),
            revision,
            self.phase,
            self.last_error,
            self.clock.time(),
            ready=self._ready(),
        )
        return self.coordinator.heartbeat(entry)

    def _ready(self) -> bool | None:
        if self.phase == DRAINING:  # written as the drain begins, before readiness is held
            return False
        return self.readiness.check()[0] if self.readiness is not None else None

    def unsettled(self) -> bool:
        """A release is under way (the pass should look again soon, not at the schedule's interval)."""
        view = self.coordinator.last_view
        return bool(view and view.release and view.release.phase in UNSETTLED)

    def rejected(self) -> frozenset[int]:
        view = self.coordinator.last_view
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
            # The shadow loads beside everything served; if only alone, the drained validator unloads its
            # serving version first and loads it back after (Candidate._validate alone).
            why = f"draining for the shadow validation of v{version}"
            with self._loading(version, why, allowed=view.mine is not None) as alone:
                verdict = self.candidate._validate(version, golden, alone=alone)
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
                why = f"draining for the swap to v{version}"
                with self._loading(version, why, allowed=view.mine is not None) as alone:
                    self.candidate.swap_in(version, alone=alone)
                # Back in traffic: the bake sees live requests. A canary's check is its BAKE on live
                # traffic, the next step: here one look only.
                bake = 0.0 if reason == "canary" else None
                back = self._unload_first_back if alone else None
                result = self.candidate.settle(version, old, Verdict(version, ok=True), golden, bake, back)
            except ServingUnavailableError:
                raise
            except MemoryLimitError as err:
                return self._pod_failure(version, f"memory: {err.reason}")
            except AgentError as err:
                return self._pod_failure(version, f"load: {err.reason}")
        if isinstance(keeper, SlotKeeper) and keeper.lost.is_set():
            self._slot_lost(version)
        if result.outcome is Outcome.ROLLED_BACK:
            return self._pod_failure(version, result.detail, result)
        self.phase, self.last_error, self.failures, self.retry_at = "idle", None, 0, 0.0
        event(log, "fleet: switched", model=self.name, version=version, previous=old)
        return result

    def _slot_lost(self, version: int) -> None:
        """The slot was taken over while the swap ran: keep the new version (ADR 26). Undoing it would be a
        second load while the fleet is already one pod over max_unavailable; the swap itself passed."""
        self.coordinator.slots_lost += 1
        event(
            log,
            "fleet: slot taken over during the swap; keeping the new version",
            level=logging.WARNING,
            model=self.name,
            version=version,
        )

    # ---- out of traffic (fleet.drain) ----

    @contextmanager
    def _loading(self, version: int, why: str, *, allowed: bool) -> Iterator[bool]:
        """A load of ``version`` under a slot, out of traffic if the fleet allows it; yields whether it must
        be unload-first. MemoryLimitError before anything moves when it does not fit even alone, or fits
        only alone and the pod stays in traffic (the error then says why it is not drained)."""
        alone = self.candidate.memory_check(version, drained=True)
        with self._out_of_traffic(why, allowed=allowed) as not_drained:
            if alone and not_drained is not None:
                self.candidate.memory_check(version, drained=False, why=not_drained)
            yield alone

    @contextmanager
    def _out_of_traffic(self, why: str, *, allowed: bool) -> Iterator[str | None]:
        """The block out of traffic: yields None when drained, else why not (the block then runs in place,
        as without a drain). Drains only with fleet.drain, when ``allowed`` (a slot is held) and at least
        ``min_ready`` other pods are ready by the ledger."""
        not_drained = self._why_in_place(allowed)
        if not_drained is not None or self.drain is None:
            yield not_drained or "fleet.drain is off"
            return
        before, start = self.phase, self.clock.monotonic()
        self.phase, self.last_drain = DRAINING, why
        self._gauge(1)
        try:
            self._beat()
            with self.drain.out_of_traffic(why) as waited:
                if self.metrics is not None:
                    self.metrics.drain_wait_seconds.labels(self.name).observe(waited)
                    self.metrics.drains.labels(self.name, "drained").inc()
                yield None
        finally:
            self.phase = before
            self._gauge(0)
            if self.metrics is not None:
                self.metrics.drain_seconds.labels(self.name).observe(self.clock.monotonic() - start)
            self._beat()

    def _why_in_place(self, allowed: bool) -> str | None:
        if self.drain is None:
            return "fleet.drain is off"
        if not allowed:
            return "no slot held"
        others = self.coordinator.ready_others()
        wanted = self.coordinator.params.min_ready
        if len(others) >= wanted:
            return None
        named = f" ({', '.join(others)})" if others else ""
        why = (
            f"only {len(others)} other pod(s) ready{named}, fleet.drain.min_ready is {wanted}: "
            "swapping in place"
        )
        self.last_drain = why
        if self.metrics is not None:
            self.metrics.drains.labels(self.name, "in_place").inc()
        event(log, "fleet: not draining", level=logging.WARNING, model=self.name, reason=why)
        return why

    def way_back(self, good: int | None) -> RollBack | None:
        """How a follower's smoke bake resumed after a restart rolls back to ``good``: unload-first when good
        beside the new version does not fit serving.memory_limit (as ``_switch`` would), else the default."""
        if good is not None and self.candidate.memory_check(good, drained=True):
            return self._unload_first_back
        return None

    def _unload_first_back(self, bad: int, good: int | None, reason: str, *, quarantine: bool = True) -> None:
        """Back to ``good`` unload-first (good beside bad does not fit): after a failed bake of an
        unload-first swap, or the fleet's ROLL_BACK (``quarantine`` False: the fleet's verdict is the
        quarantine). Out of traffic if the fleet allows it, else in place (a short gap beats an OOM kill)."""
        with self._out_of_traffic(f"draining to roll back to v{good}", allowed=True):
            self.candidate.promotion.roll_back(bad, good, reason, alone=True, quarantine=quarantine)

    def _gauge(self, value: int) -> None:
        if self.metrics is not None:
            self.metrics.draining.labels(self.name).set(value)

    def _beat(self) -> None:
        """Best effort: a heartbeat refused by a race or a 429 only delays what the ledger shows."""
        try:
            self.heartbeat()
        except AgentError as err:
            event(log, "fleet: heartbeat failed", level=logging.WARNING, model=self.name, error=err.reason)

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
        """Back to the release's previous version. Not quarantined locally: the fleet's verdict is the
        quarantine for every pod, and `fleet clear` lifts it. Unload-first (out of traffic if the fleet
        allows it) when good beside bad does not fit serving.memory_limit."""
        bad = self.serving()
        self.phase = "rolled_back"
        why = f"fleet: {reason}"
        if bad is not None and self.way_back(good) is not None:
            self._unload_first_back(bad, good, why, quarantine=False)
        else:
            self.candidate.promotion.roll_back(bad if bad is not None else good, good, why, quarantine=False)
        self.candidate.reporter.rolled_back(bad or good, good, "fleet_aborted")
        return PassResult(self.name, Outcome.ROLLED_BACK, good, f"fleet rolled back to {good}: {reason}")


def _request_count(url: str, model: str) -> RequestCount:
    """TF Serving's ``:tensorflow:serving:request_count`` for ``model``, every status summed."""
    return lambda: scrape(url, model, timeout=2.0).total


def _settle(result: PassResult, outcome: Outcome, reason: str) -> PassResult:
    """The pass's result: what a pipeline step did, else the fleet's idle or wait."""
    if result.outcome is not Outcome.IDLE:
        return result
    return PassResult(result.model, outcome, result.version, reason)
