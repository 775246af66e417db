"""One pass for one model: observe (bucket, disk, TF Serving, state) → plan (pure) → act (stage, validate,
promote, bake, roll back). Idempotent: a pass after a crash finishes or undoes what the last one began.

Dependencies are plain keyword arguments (no container): ports for the bucket and TF Serving, the state
store, the metrics, and a clock.
"""

from __future__ import annotations

import enum
import errno
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.adapters.sources.base import ModelSource
from agent.adapters.tfserving.base import ServingControl
from agent.adapters.tfserving.wait import wait_for_versions
from agent.core.domain import Manifest, Verdict, VersionState
from agent.core.errors import AgentError, DiskSpaceError, ServingUnavailableError, TransientSourceError
from agent.core.golden import Golden
from agent.core.plan import Action, Observation, Plan, Policy, plan
from agent.infra.clock import Clock, Stopping, utc
from agent.infra.config import ModelSettings
from agent.infra.logs import event
from agent.infra.metrics import AgentMetrics
from agent.infra.state import StateStore
from agent.pipeline.discovery import Discovery
from agent.pipeline.operator import OperatorActions
from agent.pipeline.progress import DownloadProgress
from agent.pipeline.promote import Promoter, Swap, recover
from agent.pipeline.staging import StagedVersion, check_local, prune_versions, stage_version, verify_local
from agent.pipeline.validate import probe_model, validate_candidate
from agent.pipeline.warmup import write_warmup

log = logging.getLogger("tfs_agent.reconciler")


class Outcome(enum.IntEnum):
    """What a pass did, ordered by severity (``tfs-agent once`` exits with the worst one's code)."""

    IDLE = 0
    PROMOTED = 1
    WAITING = 3
    REJECTED = 4
    ROLLED_BACK = 5
    RETRY = 6

    @property
    def exit_code(self) -> int:
        return {0: 0, 1: 0, 3: 3, 4: 4, 5: 4, 6: 5}[int(self)]


@dataclass(frozen=True)
class PassResult:
    model: str
    outcome: Outcome
    version: int | None = None
    detail: str = ""


GoldenLoader = Callable[[], Golden | None]


class ModelReconciler(OperatorActions):
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
        golden: GoldenLoader,
        load_timeout: float,
        shadow_suffix: str = "__candidate",
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.source = source
        self.serving = serving
        self.state = state
        self.metrics = metrics
        self.clock = clock
        self.golden = golden
        self.load_timeout = load_timeout
        self.shadow = settings.name + shadow_suffix
        self.discovery = Discovery(source, settings.completion, clock=clock, model=settings.name)
        swap = Swap(settings.name, settings.local_path, settings.labels, load_timeout)
        self.promoter = Promoter(swap, serving=serving, state=state, clock=clock)
        self.lock = threading.RLock()
        self.ready = False
        self.ready_reason = "no pass yet"
        self.last_plan: Plan | None = None
        interval = settings.schedule.interval
        metrics.declare(
            self.name, interval.total_seconds() if interval and not settings.schedule.cron else None
        )
        metrics.serving_version.labels(self.name).set(state.get(self.name).serving or 0)

    # ---- the pass ----------------

    def reconcile(self) -> PassResult:
        """One pass. Never raises for expected failures: they become the result's outcome and detail."""
        with self.lock, self.metrics.poll_duration.labels(self.name).time():
            try:
                result = self._pass()
            except AgentError as err:
                result = self._failed_poll(err)
            except OSError as err:  # the volume itself: full, read-only, gone
                failure = _volume_error(err)
                self.metrics.errors.labels(self.name, "volume", type(failure).__name__).inc()
                result = self._failed_poll(failure)
            except Stopping:
                event(log, "pass abandoned: stopping", model=self.name)
                return PassResult(self.name, Outcome.RETRY, None, "stopped before the pass finished")
            self._update_readiness()
            self.metrics.quarantined.labels(self.name).set(len(self.state.get(self.name).quarantined))
            return result

    def _pass(self) -> PassResult:
        self._recover()
        self._converge_serving()
        with self.metrics.stage(self.name, "detect"):
            found = self.discovery.poll()
        now = self.clock.time()
        with self.state.update(self.name) as record:
            record.last_poll = record.last_poll_ok = now
            record.last_error = None
        self.metrics.polls.labels(self.name, "ok").inc()
        self.metrics.last_poll_ok.labels(self.name).set(now)
        self.metrics.candidates.labels(self.name, "incomplete").inc(
            len(found.incomplete - self._seen_incomplete)
        )
        self._seen_incomplete = frozenset(found.incomplete)
        decision = self._plan(found.complete)
        self.last_plan = decision
        if decision.action is not Action.PROMOTE or decision.version is None:
            return PassResult(
                self.name,
                Outcome.IDLE if decision.action is Action.IDLE else Outcome.WAITING,
                decision.version,
                decision.reason,
            )
        event(log, "candidate", model=self.name, version=decision.version, reason=decision.reason)
        return self._attempt(decision.version, found.complete.get(decision.version))

    _seen_incomplete: frozenset[int] = frozenset()

    def _failed_poll(self, err: AgentError) -> PassResult:
        try:
            with self.state.update(self.name) as record:
                record.last_poll = self.clock.time()
                record.last_error = err.reason
        except OSError:  # a full volume cannot take the state file either; the log and metrics still tell
            pass
        self.metrics.polls.labels(self.name, "error").inc()
        event(
            log,
            "pass failed",
            level=logging.WARNING,
            model=self.name,
            error=type(err).__name__,
            reason=err.reason,
        )
        return PassResult(self.name, Outcome.RETRY, None, err.reason)

    def _plan(self, complete: Mapping[int, Manifest]) -> Plan:
        record = self.state.get(self.name)
        on_disk = {v for v in (record.serving, record.previous, record.pinned) if v is not None}
        # Sizes only (no file contents read): this runs every pass; staging re-checks checksums before use.
        local = {v for v in on_disk if check_local(self.settings.local_path, v, checksums=False) is None}
        policy = self.settings.policy
        obs = Observation(
            available=frozenset(complete) | frozenset(local),
            serving=record.serving,
            quarantined=record.quarantined,
            pinned=record.pinned,
            last_promotion=utc(record.last_promotion) if record.last_promotion else None,
            serving_metrics=record.serving_metrics,
        )
        rules = Policy(policy.versions, policy.window, policy.min_interval, policy.replace_below)
        return plan(obs, rules, utc(self.clock.time()))

    # ---- act ----------------

    def _attempt(self, version: int, manifest: Manifest | None) -> PassResult:
        # A broken golden file is the config's fault, not the candidate's: it fails the pass (shown as
        # last_error in /status) and quarantines nothing.
        golden = self.golden()
        try:
            self._stage(version, manifest, golden)
        except AgentError as err:
            if err.retryable:
                raise
            return self._reject(version, f"staging: {err.reason}", "quarantined")
        verdict = self._validate(version, golden)
        if not verdict.ok:
            return self._reject(version, f"validation: {verdict.reason}", "rejected")
        return self._promote(version, verdict, golden)

    def _stage(self, version: int, manifest: Manifest | None, golden: Golden | None) -> None:
        """Bring the version onto the volume, verified (a verified copy already there is reused)."""
        if manifest is None:  # no longer complete in the bucket, e.g. a pinned older version
            if not verify_local(self.settings.local_path, version):
                raise TransientSourceError(
                    f"version {version} is neither complete in {self.source.uri} nor intact on disk"
                )
        else:
            try:
                staged = stage_version(
                    self.source,
                    manifest,
                    self.settings.local_path,
                    concurrency=self.settings.download_concurrency,
                    progress=DownloadProgress(self.name, manifest, self.clock),
                )
            except AgentError as err:
                self.metrics.errors.labels(self.name, "download", type(err).__name__).inc()
                raise
            self._record_staging(staged)
        if golden is not None:
            self._warmup(version, golden)

    def _record_staging(self, staged: StagedVersion) -> None:
        if staged.reused:
            return
        self.metrics.stage_duration.labels(self.name, "download").observe(staged.download_seconds)
        self.metrics.stage_duration.labels(self.name, "verify").observe(staged.verify_seconds)
        self.metrics.downloaded_bytes.labels(self.name).inc(staged.bytes)
        event(
            log,
            "staged",
            model=self.name,
            version=staged.version,
            bytes=staged.bytes,
            download_s=round(staged.download_seconds, 3),
        )

    def _warmup(self, version: int, golden: Golden) -> None:
        """Golden inputs as warmup records (B22), so the first live requests after the swap are not slow.
        Best effort: a model whose graph cannot be read fails its load anyway, with a better message."""
        try:
            if write_warmup(self.settings.local_path / str(version), golden):
                event(log, "warmup written", model=self.name, version=version)
        except Exception as err:
            event(
                log,
                "warmup not written",
                level=logging.WARNING,
                model=self.name,
                version=version,
                reason=str(err),
            )

    def _validate(self, version: int, golden: Golden | None) -> Verdict:
        record = self.state.get(self.name)
        with self.metrics.stage(self.name, "validate"):
            verdict = validate_candidate(
                self.serving,
                model=self.name,
                shadow_name=self.shadow,
                base_path=self.settings.local_path,
                version=version,
                golden=golden,
                champion_version=record.serving,
                champion_tolerance=self.settings.policy.champion_tolerance,
                load_timeout=self.load_timeout,
                clock=self.clock,
            )
        self.metrics.record_validation(self.name, "candidate", verdict.metrics)
        self.metrics.record_validation(self.name, "serving", verdict.champion_metrics)
        with self.state.update(self.name) as rec:
            rec.last_verdict = _verdict_json(verdict)
        event(log, "validated", model=self.name, version=version, ok=verdict.ok, reason=verdict.reason)
        return verdict

    def _promote(self, version: int, verdict: Verdict, golden: Golden | None) -> PassResult:
        old = self.state.get(self.name).serving
        try:
            with self.metrics.stage(self.name, "load"):
                self.promoter.load_beside(version, old)
        except ServingUnavailableError:
            # An unreachable server (restarting, say) tells nothing about the version: the pass is a retry and
            # the next one undoes the step (recover) and tries the version again.
            raise
        except AgentError as err:
            # A load failure is final in TF Serving (B6) and a timeout leaves a version nobody can trust:
            # either way the config is already back on the old version; a fix comes as a new version.
            return self._reject(version, f"load: {err.reason}", "quarantined")
        with self.metrics.stage(self.name, "promote"):
            self.promoter.switch(version, old)
        self._commit(version, old, verdict)
        problem = self._bake(version, golden)
        if problem:
            return self._roll_back_after_bake(version, old, problem)
        self.promoter.done()
        self.metrics.candidates.labels(self.name, "promoted").inc()
        self.metrics.last_success.labels(self.name).set(self.clock.time())
        self._prune()
        event(log, "promoted", model=self.name, version=version, previous=old)
        return PassResult(self.name, Outcome.PROMOTED, version, f"serving {version} (was {old})")

    def _commit(self, version: int, old: int | None, verdict: Verdict) -> None:
        with self.state.update(self.name) as record:
            record.serving, record.previous = version, old
            record.last_promotion = self.clock.time()
            record.serving_metrics = dict(verdict.metrics)
            if record.pending is not None:
                record.pending = type(record.pending)(version, old, "bake", record.pending.started)
        self.metrics.serving_version.labels(self.name).set(version)

    def _bake(self, version: int, golden: Golden | None) -> str | None:
        seconds = self.settings.policy.bake_time.total_seconds()
        label = self.settings.labels[0] if self.settings.labels else None
        with self.metrics.stage(self.name, "bake"):
            return self.promoter.bake(
                version, seconds, lambda: probe_model(self.serving, self.name, golden, label=label)
            )

    def _roll_back_after_bake(self, bad: int, good: int | None, problem: str) -> PassResult:
        event(
            log,
            "bake failed; rolling back",
            level=logging.WARNING,
            model=self.name,
            version=bad,
            to=good,
            reason=problem,
        )
        self.promoter.roll_back(bad, good)
        self._after_rollback(bad, good, f"bake: {problem}", "bake_failed")
        return PassResult(self.name, Outcome.ROLLED_BACK, good, f"{bad} failed its bake ({problem})")

    def _after_rollback(self, bad: int, good: int | None, reason: str, why: str) -> None:
        with self.state.update(self.name) as record:
            record.serving, record.previous = good, None
            record.quarantined[bad] = reason
        self.metrics.rollbacks.labels(self.name, why).inc()
        self.metrics.candidates.labels(self.name, "quarantined").inc()
        self.metrics.serving_version.labels(self.name).set(good or 0)

    def _reject(self, version: int, reason: str, outcome: str) -> PassResult:
        with self.state.update(self.name) as record:
            record.quarantined[version] = reason
        self.metrics.candidates.labels(self.name, outcome).inc()
        event(log, "quarantined", level=logging.WARNING, model=self.name, version=version, reason=reason)
        return PassResult(self.name, Outcome.REJECTED, version, reason)

    def _prune(self) -> None:
        record = self.state.get(self.name)
        protect = {v for v in (record.serving, record.previous, record.pinned) if v is not None}
        removed = prune_versions(self.settings.local_path, protect=protect, keep=self.settings.keep_versions)
        if removed:
            event(log, "pruned", model=self.name, versions=removed)

    # ---- convergence ----------------

    def _recover(self) -> None:
        """Finish or undo an interrupted promotion; drop a shadow model left behind by a crash."""
        if self.shadow in self.serving.configured():
            self.serving.apply({self.shadow: None})
        pending = self.state.get(self.name).pending
        if pending is None:
            return
        done, serving = recover(self.promoter, pending)
        with self.state.update(self.name) as record:
            if done == "finished":
                record.serving, record.previous = pending.version, pending.previous
            else:
                record.serving = pending.previous
                if pending.step == "rollback":
                    record.quarantined.setdefault(
                        pending.version, "bake failed (rollback finished on restart)"
                    )
        self.metrics.serving_version.labels(self.name).set(serving or 0)

    def _converge_serving(self) -> None:
        """Make TF Serving's config match the recorded serving version (after a restart of either process).

        Asks TF Serving every pass (one GetModelStatus): an unreachable server makes the pass a retry instead
        of an "idle" that hides an outage. Labels are only sent once the version is AVAILABLE (B13).
        """
        serving = self.state.get(self.name).serving
        if serving is None:
            return
        wanted = self.promoter.swap.served([serving], serving)
        states = {s.version: s.state for s in self.serving.status(self.name)}
        live = states.get(serving) is VersionState.AVAILABLE
        if live and self.serving.configured().get(self.name) == wanted:
            return
        if not live:
            self.serving.apply({self.name: self.promoter.swap.served([serving], None)})
            wait_for_versions(self.serving, self.name, [serving], timeout=self.load_timeout, clock=self.clock)
        self.serving.apply({self.name: wanted})
        event(log, "converged", model=self.name, version=serving)

    def _update_readiness(self) -> None:
        serving = self.state.get(self.name).serving
        if serving is None:
            self.ready, self.ready_reason = False, "no validated version serves yet"
        else:
            try:
                states = {s.version: s.state for s in self.serving.status(self.name)}
            except AgentError as err:
                self.ready, self.ready_reason = False, f"TF Serving: {err.reason}"
            else:
                ok = states.get(serving) is VersionState.AVAILABLE
                self.ready = ok
                self.ready_reason = "ok" if ok else f"version {serving} is not AVAILABLE in TF Serving"
        self.metrics.ready.labels(self.name).set(1 if self.ready else 0)

    def status(self) -> dict[str, Any]:
        record = self.state.get(self.name).to_json()
        plan_ = self.last_plan
        record.update(
            model=self.name,
            source=self.source.uri,
            ready=self.ready,
            ready_reason=self.ready_reason,
            last_plan={"action": plan_.action.value, "version": plan_.version, "reason": plan_.reason}
            if plan_
            else None,
        )
        return record


def _verdict_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "version": verdict.version,
        "ok": verdict.ok,
        "reason": verdict.reason,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in verdict.checks],
        "metrics": dict(verdict.metrics),
        "champion_metrics": dict(verdict.champion_metrics),
    }


def _volume_error(err: OSError) -> AgentError:
    """An OSError from the local volume as the agent's error, with the fix in the message."""
    what = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
    if err.errno == errno.ENOSPC:
        return DiskSpaceError(f"the local volume is full ({what}); lower keep_versions or grow the volume")
    return AgentError(f"cannot write to the local volume ({what})")
