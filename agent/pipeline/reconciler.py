"""One pass for one model: observe (bucket, disk, TF Serving, state) → plan (pure) → act (stage, validate,
promote, bake, roll back). Idempotent: a pass after a crash finishes or undoes what the last one began.

Orchestration only: the promotion's state is Promotion's (promotion.py), every log line and metric is the
Reporter's (report.py), operator actions are Operator's (operator.py). Dependencies are plain keyword
arguments (no container): ports for the bucket and TF Serving, the state store, the metrics, and a clock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from agent.adapters.prometheus import MetricQuery
from agent.adapters.sources.base import ModelSource
from agent.adapters.tfserving.base import ServingControl
from agent.core.domain import Manifest
from agent.core.errors import AgentError, volume_error
from agent.core.evidence import Evidence
from agent.core.golden import Golden
from agent.core.plan import Action, Plan, Policy, plan
from agent.fleet import FleetCoordinator
from agent.fleet.metrics import FleetMetrics
from agent.infra.clock import Clock, Stopping, utc
from agent.infra.config import ModelSettings
from agent.infra.metrics import AgentMetrics
from agent.infra.state import Pending, StateStore
from agent.pipeline.candidate import Candidate
from agent.pipeline.discovery import Discovery
from agent.pipeline.evidence import EvidenceKeeper
from agent.pipeline.fleet_pass import FleetPass
from agent.pipeline.golden_feed import GoldenFeed
from agent.pipeline.memory import MemoryBudget
from agent.pipeline.observe import observe
from agent.pipeline.operator import Operator
from agent.pipeline.promotion import Promotion, Recovered, Recovery, Swap
from agent.pipeline.readiness import Readiness
from agent.pipeline.report import Outcome, PassResult, Reporter
from agent.pipeline.volume import VolumeLimit

__all__ = ["ModelReconciler", "Outcome", "PassResult"]

FLEET_REJECTED = "rejected by the fleet (tfs-agent fleet status shows why; fleet clear lifts it)"


class ModelReconciler:
    """Keeps one model's served version in line with its bucket and policy."""

    def __init__(
        self,
        settings: ModelSettings,
        *,
        source: ModelSource,
        serving: ServingControl,
        state: StateStore,
        metrics: AgentMetrics,
        clock: Clock,
        golden: GoldenFeed | None,
        load_timeout: float,
        shadow_suffix: str = "__candidate",
        poll_interval: float | None = None,
        live: MetricQuery | None = None,
        volume: VolumeLimit | None = None,
        fleet: FleetCoordinator | None = None,
        fleet_metrics: FleetMetrics | None = None,
        monitoring_url: str | None = None,
        memory: MemoryBudget | None = None,
    ) -> None:
        """``poll_interval``: seconds between polls for the stale-model alert (for cron, the longest gap;
        the caller knows the scheduler); by default the schedule's interval. ``fleet``: this model's
        coordinator when the config has a ``fleet:`` block (docs/fleet.md), else the pod acts alone."""
        self.settings, self.name = settings, settings.name
        self.source, self.serving, self.state = source, serving, state
        self.metrics, self.clock = metrics, clock
        self.load_timeout = load_timeout
        self.shadow = settings.name + shadow_suffix
        self.discovery = Discovery(source, settings.completion, clock=clock, model=settings.name)
        swap = Swap(settings.name, settings.local_path, settings.labels, load_timeout)
        self.promotion = Promotion(swap, serving=serving, state=state, clock=clock)
        self.reporter = Reporter(self.name, metrics)
        self.evidence = EvidenceKeeper(
            self.name,
            feed=golden,
            serving=serving,
            state=state,
            reporter=self.reporter,
            clock=clock,
            rescore_interval=settings.policy.rescore_interval,
            live=live,
            live_floor=settings.policy.live_floor,
        )
        self.lock = threading.RLock()
        self.operator = Operator(
            settings,
            lock=self.lock,
            state=state,
            promotion=self.promotion,
            reporter=self.reporter,
            discovery=self.discovery,
        )
        self.candidate = Candidate(
            settings,
            source=source,
            serving=serving,
            state=state,
            clock=clock,
            promotion=self.promotion,
            reporter=self.reporter,
            load_timeout=load_timeout,
            shadow=self.shadow,
            evidence=self.evidence,
            volume=volume,
            monitoring_url=monitoring_url,
            memory=memory,
        )
        self.readiness = Readiness(self.name, serving=serving, state=state, clock=clock)
        self.fleet = (
            FleetPass(
                fleet,
                self.candidate,
                clock,
                self._canary_bake,
                readiness=self.readiness,
                monitoring_url=monitoring_url,
                metrics=fleet_metrics,
            )
            if fleet is not None
            else None
        )
        self.fleet_metrics = fleet_metrics
        self.last_plan: Plan | None = None
        interval = settings.schedule.interval
        if poll_interval is None and interval is not None and not settings.schedule.cron:
            poll_interval = interval.total_seconds()
        self.reporter.declare(poll_interval, state.get(self.name))

    # ---- the pass ----------------

    def reconcile(self) -> PassResult:
        """One pass. Never raises for expected failures: they become the result's outcome and detail."""
        with self.lock, self.reporter.timed_pass():
            try:
                result = self._pass()
            except AgentError as err:
                result = self._failed(err)
            except OSError as err:  # the volume itself: full, read-only, gone
                result = self._failed(volume_error(err), stage="volume")
            except Stopping:
                self.reporter.abandoned()
                return PassResult(self.name, Outcome.RETRY, None, "stopped before the pass finished")
            self._update_readiness()
            self.reporter.waiting(result)
            return result

    def _pass(self) -> PassResult:
        with self.reporter.counting("serving"):  # an outage is counted by type, as the bucket's errors are
            recovered = self._recover()
        if recovered is not None and recovered.outcome is Recovery.RESUMED:
            return self._resume(recovered.pending)  # the pass is that bake's, as it was before the crash
        with self.reporter.counting("serving"):
            self._converge_serving()
        with self.reporter.stage("detect"):
            found = self.discovery.poll()
        now = self.clock.time()
        with self.state.update(self.name) as record:
            record.last_poll = record.last_poll_ok = now
            record.last_error = None
        self.reporter.polled(now, frozenset(found.incomplete))
        self._quarantine_invalid(found.invalid)
        evidence = self.evidence.refresh(self.state.get(self.name).serving)
        decision = self.last_plan = self._plan(found.complete, evidence)
        if self.fleet is not None:
            return self._fleet_pass(decision, found.complete)
        if decision.action is not Action.PROMOTE or decision.version is None:
            idle = decision.action is Action.IDLE
            outcome = Outcome.IDLE if idle else Outcome.WAITING
            return PassResult(self.name, outcome, decision.version, decision.reason)
        self.reporter.candidate(decision.version, decision.reason)
        # A broken golden file is the config's fault, not the candidate's: it fails the pass (shown as
        # last_error in /status) and quarantines nothing.
        golden = self.evidence.golden()
        return self.candidate.attempt(decision.version, found.complete.get(decision.version), golden)

    def _fleet_pass(self, decision: Plan, complete: Mapping[int, Manifest]) -> PassResult:
        """observe → decide → apply | step: the plan's PROMOTE only proposes a release; the fleet decides."""
        assert self.fleet is not None
        proposed = decision.version if decision.action is Action.PROMOTE else None
        try:
            return self.fleet.run(proposed, complete, self.evidence.golden)
        finally:
            if self.fleet_metrics is not None:
                self.fleet_metrics.update(self.name, self.fleet.coordinator)

    def _canary_bake(self, version: int, seconds: float) -> str | None:
        """The canary's bake: the golden probe for ``seconds``, and the live-traffic gates if configured."""
        return self.candidate.bake(version, seconds, self.evidence.golden())

    def heartbeat(self) -> None:
        """The fleet heartbeat job: this pod's ledger entry, busy or idle (no-op without a fleet)."""
        if self.fleet is not None:
            try:
                self.fleet.heartbeat()
            except AgentError as err:
                self.reporter.failed(err, "fleet")

    def fleet_busy(self) -> bool:
        """A fleet release is under way: look again soon, not at the schedule's interval."""
        return self.fleet is not None and self.fleet.unsettled()

    def _quarantine_invalid(self, invalid: Mapping[int, str]) -> None:
        """A version discovery judged invalid (bad manifest, wrong model, hostile object name) is quarantined
        like a failed candidate: shown in /status and metrics, cleared by the operator once fixed in place."""
        known = self.state.get(self.name).quarantined
        for version, reason in sorted(invalid.items()):
            if version not in known:
                why = f"invalid: {reason}; once fixed in place: tfs-agent clear {self.name} {version}"
                self.promotion.quarantine(version, why)
                self.reporter.rejected(version, why, "quarantined")

    def golden(self) -> Golden | None:
        """The model's golden data (GoldenFileError when it cannot be used): a start-up config check."""
        return self.evidence.check_golden()

    def _failed(self, err: AgentError, stage: str | None = None) -> PassResult:
        try:
            with self.state.update(self.name) as record:
                record.last_poll = self.clock.time()
                record.last_error = err.reason
        except OSError:  # a full volume cannot take the state file either; the log and metrics still tell
            pass
        if self.fleet is not None:  # in the ledger too, once the bucket takes it, until a switch succeeds
            self.fleet.last_error = err.reason
        self.reporter.failed(err, stage)
        return PassResult(self.name, Outcome.RETRY, None, err.reason)

    def _plan(self, complete: Mapping[int, Manifest], evidence: Evidence) -> Plan:
        policy = self.settings.policy
        rules = Policy(
            versions=policy.versions,
            window=policy.window,
            window_tz=policy.window_tz,
            min_interval=policy.min_interval,
            replace_below=policy.golden_floor,
            replace_live=policy.live_floor,
        )
        obs = observe(self.state.get(self.name), complete, self.settings.local_path, evidence)
        if self.fleet is not None:
            obs = replace(obs, quarantined=self._with_fleet_verdicts(obs.quarantined))
        return plan(obs, rules, utc(self.clock.time()))

    # ---- convergence ----------------

    def _recover(self) -> Recovered | None:
        """Undo an interrupted promotion or bring it to its bake; drop a shadow left behind by a crash."""
        if self.shadow in self.serving.configured():
            self.serving.apply({self.shadow: None})
        done = self.promotion.recover()
        if done is not None:
            self.reporter.recovered(done)
        return done

    def _resume(self, pending: Pending) -> PassResult:
        """The rest of a bake a restart cut short; a failure rolls back as an uninterrupted bake's would (in a
        fleet unload-first when only one version fits, as FleetPass's own way back)."""
        back = self.fleet.way_back(pending.previous) if self.fleet is not None else None
        # The golden file as it would be used now (read if this process has not read it yet).
        return self.candidate.resume(pending, self.evidence.check_golden(), back)

    def _converge_serving(self) -> None:
        serving = self.state.get(self.name).serving
        if self.promotion.converge(serving) and serving is not None:
            self.reporter.converged(serving)

    def _update_readiness(self) -> None:
        self.reporter.after_pass(self.check_ready()[0], len(self.state.get(self.name).quarantined))

    def check_ready(self) -> tuple[bool, str]:
        """Whether the pod should get traffic for this model, and why not (readiness.py): asked per probe,
        outside the pass lock; the gauge follows every answer."""
        ready, why = self.readiness.check()
        self.metrics.ready.labels(self.name).set(1 if ready else 0)
        return ready, why

    @property
    def ready(self) -> bool:
        return self.check_ready()[0]

    def _with_fleet_verdicts(self, quarantined: Mapping[int, str]) -> dict[int, str]:
        """This pod's quarantine with the fleet's verdicts: quarantine for every pod, never written locally
        (lifted by `fleet clear`); a local reason wins for a version in both."""
        fleet = {v: FLEET_REJECTED for v in self.fleet.rejected()} if self.fleet is not None else {}
        return {**fleet, **quarantined}

    def status(self) -> dict[str, Any]:
        ready, why = self.check_ready()
        state = self.state.get(self.name)
        record = state.to_json()
        quarantined = self._with_fleet_verdicts(state.quarantined)
        record["quarantined"] = {str(v): quarantined[v] for v in sorted(quarantined)}
        return {
            **record,
            "model": self.name,
            "source": self.source.uri,
            "ready": ready,
            "ready_reason": why,
            "draining": self.readiness.held,
            "last_drain": self.fleet.last_drain if self.fleet is not None else None,
            "last_plan": self.last_plan.to_json() if self.last_plan else None,
            "evidence": self.evidence.status(),
        }
