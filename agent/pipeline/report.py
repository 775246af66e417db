"""What a pass tells the world: every log line and metric of the pipeline, from the stage results it gets.

The stages return what happened (a StagedVersion, a Verdict, a Recovered, a PassResult); the reconciler hands
each to the Reporter, and only the Reporter logs and counts. One transition, one log line (docs/metrics.md
lists the metrics).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from agent.core.domain import Verdict
from agent.core.errors import AgentError
from agent.core.evidence import Score
from agent.infra.logs import event
from agent.infra.metrics import AgentMetrics
from agent.infra.state import ModelRecord
from agent.pipeline.promotion import Recovered, Recovery
from agent.pipeline.staging import StagedVersion

log = logging.getLogger("tfs_agent.reconciler")


_RECOVERED = {
    Recovery.RESUMED: "recovered: resuming the bake",
    Recovery.UNDONE: "recovered: undid promotion",
}


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


class Reporter:
    """Logs and metrics of one model."""

    def __init__(self, model: str, metrics: AgentMetrics) -> None:
        self.model = model
        self.metrics = metrics
        self._seen_incomplete: frozenset[int] = frozenset()
        self._told: tuple[object, ...] | None = None

    def declare(self, poll_interval: float | None, record: ModelRecord) -> None:
        """The model's series at zero, its poll interval (seconds; for cron the longest gap between runs)
        and what the state file says serves, so alerts see them before the first event."""
        self.metrics.declare(self.model, poll_interval)
        self.serving(record.serving)
        self.quarantined(len(record.quarantined))

    def timed_pass(self) -> AbstractContextManager[None]:
        return self.metrics.poll_duration.labels(self.model).time()

    def stage(self, stage: str) -> AbstractContextManager[None]:
        """Time a stage and count its failure by error type."""
        return self.metrics.stage(self.model, stage)

    def counting(self, stage: str) -> AbstractContextManager[None]:
        """Count an untimed step's failure by error type (e.g. ``serving``: TF Serving unreachable)."""
        return self.metrics.errors_in(self.model, stage)

    def _news(self, key: tuple[object, ...]) -> bool:
        """Whether this pass's hold or failure differs from the last pass's: a repeat is no transition."""
        news, self._told = key != self._told, key
        return news

    # ---- the pass ----------------

    def polled(self, now: float, incomplete: frozenset[int]) -> None:
        self.metrics.polls.labels(self.model, "ok").inc()
        self.metrics.last_poll_ok.labels(self.model).set(now)
        self.metrics.candidates.labels(self.model, "incomplete").inc(len(incomplete - self._seen_incomplete))
        self._seen_incomplete = incomplete

    def failed(self, err: AgentError, stage: str | None = None) -> None:
        """A pass that ended in an error; ``stage`` counts it in tfs_agent_errors when no stage timer did."""
        if stage is not None:
            self.metrics.errors.labels(self.model, stage, type(err).__name__).inc()
        self.metrics.polls.labels(self.model, "error").inc()
        if self._news(("failed", type(err).__name__, err.reason)):
            fields = {"error": type(err).__name__, "reason": err.reason}
            event(log, "pass failed", level=logging.WARNING, model=self.model, **fields)

    def abandoned(self) -> None:
        event(log, "pass abandoned: stopping", model=self.model)

    def waiting(self, result: PassResult) -> None:
        """Every pass ends here: a new hold is logged once, not on every poll it lasts."""
        if result.outcome is Outcome.WAITING:
            if self._news(("waiting", result.version, result.detail)):
                event(log, "waiting", model=self.model, version=result.version, reason=result.detail)
        elif result.outcome is not Outcome.RETRY:
            self._told = None

    def candidate(self, version: int, reason: str) -> None:
        event(log, "candidate", model=self.model, version=version, reason=reason)

    def download_failed(self, err: AgentError) -> None:
        self.metrics.errors.labels(self.model, "download", type(err).__name__).inc()

    def staged(self, staged: StagedVersion) -> None:
        if staged.reused:
            event(log, "already staged", model=self.model, version=staged.version)
            return
        self.metrics.stage_duration.labels(self.model, "download").observe(staged.download_seconds)
        self.metrics.stage_duration.labels(self.model, "verify").observe(staged.verify_seconds)
        self.metrics.downloaded_bytes.labels(self.model).inc(staged.bytes)
        seconds = round(staged.download_seconds, 3)
        event(log, "staged", model=self.model, version=staged.version, bytes=staged.bytes, download_s=seconds)

    def warmup(self, version: int, written: bool, problem: str | None) -> None:
        if written:
            event(log, "warmup written", model=self.model, version=version)
        elif problem is not None:
            fields = {"version": version, "reason": problem}
            event(log, "warmup not written", level=logging.WARNING, model=self.model, **fields)

    def validated(self, verdict: Verdict) -> None:
        self.metrics.record_validation(self.model, "candidate", verdict.metrics)
        self.metrics.record_validation(self.model, "serving", verdict.champion_metrics)
        v = verdict
        event(log, "validated", model=self.model, version=v.version, ok=v.ok, reason=v.reason)

    def rejected(self, version: int, reason: str, outcome: str) -> None:
        self.metrics.candidates.labels(self.model, outcome).inc()
        event(log, "quarantined", level=logging.WARNING, model=self.model, version=version, reason=reason)

    def serving(self, version: int | None) -> None:
        self.metrics.serving_version.labels(self.model).set(version or 0)

    def promoted(self, verdict: Verdict, previous: int | None, now: float) -> None:
        """The version baked: it serves, and its golden-data score is now the serving one's."""
        version = verdict.version
        self.metrics.candidates.labels(self.model, "promoted").inc()
        self.metrics.last_success.labels(self.model).set(now)
        self.metrics.record_validation(self.model, "serving", verdict.metrics)
        event(log, "promoted", model=self.model, version=version, previous=previous)

    def bake_failed(self, bad: int, good: int | None, problem: str) -> None:
        fields = {"version": bad, "to": good, "reason": problem}
        event(log, "bake failed; rolling back", level=logging.WARNING, model=self.model, **fields)

    def rolled_back(self, bad: int, good: int | None, why: str) -> None:
        self.metrics.rollbacks.labels(self.model, why).inc()
        self.metrics.candidates.labels(self.model, "quarantined").inc()
        self.serving(good)
        if why == "operator":
            event(log, "rolled back by operator", model=self.model, version=good, quarantined=bad)

    def pruned(self, removed: Sequence[int]) -> None:
        if removed:
            event(log, "pruned", model=self.model, versions=list(removed))

    # ---- convergence ----------------

    def recovered(self, done: Recovered) -> None:
        version, step = done.pending.version, done.pending.step.value
        event(
            log, _RECOVERED[done.outcome], model=self.model, version=version, step=step, serving=done.serving
        )
        self.serving(done.serving)

    def converged(self, version: int) -> None:
        event(log, "converged", model=self.model, version=version)

    def after_pass(self, ready: bool, quarantined: int) -> None:
        self.metrics.ready.labels(self.model).set(1 if ready else 0)
        self.quarantined(quarantined)

    def quarantined(self, count: int) -> None:
        """How many versions are refused now (after a pass, and at once after an operator's action)."""
        self.metrics.quarantined.labels(self.model).set(count)

    # ---- evidence (the performance policy) ----------------

    def evidence_sources(self, sources: Sequence[str]) -> None:
        """``tfs_agent_evidence_ok`` for each source the policy reads, at 0 until it first answers."""
        for source in sources:
            self.metrics.evidence_ok.labels(self.model, source).set(0)

    def scored(self, score: Score, *, logged: bool = True) -> None:
        """The serving version's latest golden score (a re-score, or a promotion's own verdict)."""
        self.metrics.record_validation(self.model, "serving", score.metrics)
        if logged:
            shown = ",".join(f"{k}={v:.4g}" for k, v in sorted(score.metrics.items())) or None
            event(
                log,
                "serving version scored",
                model=self.model,
                version=score.version,
                generation=score.generation,
                metrics=shown,
            )

    def golden_in_use(self, generation: str) -> None:
        event(log, "golden data in use", model=self.model, generation=generation)

    def evidence_problem(self, source: str, reason: str, kind: str, *, new: bool) -> None:
        """Evidence that cannot be used; counted and logged once per distinct problem."""
        self.metrics.evidence_ok.labels(self.model, source).set(0)
        if new:
            self.metrics.errors.labels(self.model, source, kind).inc()
            fields = {"source": source, "reason": reason}
            event(log, "evidence problem", level=logging.WARNING, model=self.model, **fields)

    def evidence_ok(self, source: str, *, recovered: bool) -> None:
        self.metrics.evidence_ok.labels(self.model, source).set(1)
        if recovered:
            event(log, "evidence ok again", model=self.model, source=source)

    # ---- operator ----------------

    def operator(self, message: str, version: int | None = None) -> None:
        event(log, message, model=self.model, version=version)
