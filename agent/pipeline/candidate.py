"""The act half of a pass: one candidate version staged, validated in a shadow, promoted, baked.

Each stage's result goes to the Reporter; every state change of the promotion goes through Promotion. A
failure the candidate is to blame for quarantines it; anything retryable propagates to the reconciler.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

from agent.adapters.sources.base import ModelSource
from agent.adapters.tfserving.base import ServingControl, Signature
from agent.core.domain import Manifest, Verdict
from agent.core.errors import (
    AgentError,
    ServingRejectedError,
    ServingUnavailableError,
    TransientSourceError,
)
from agent.core.golden import Golden
from agent.infra.clock import Clock
from agent.infra.config import ModelSettings
from agent.infra.state import Pending, StateStore
from agent.pipeline.evidence import EvidenceKeeper
from agent.pipeline.live import LiveWatch
from agent.pipeline.memory import MemoryBudget
from agent.pipeline.progress import DownloadProgress
from agent.pipeline.promotion import Promotion
from agent.pipeline.report import Outcome, PassResult, Reporter
from agent.pipeline.staging import prune_versions, stage_version, verify_local
from agent.pipeline.validate import probe_model, validate_candidate, validate_in_place
from agent.pipeline.volume import VolumeLimit
from agent.pipeline.warmup import try_warmup

RollBack = Callable[[int, int | None, str], None]
"""(bad, good, reason): how a failed bake goes back to the old version."""

RESUMED = "resumed after a restart"


class Candidate:
    """The stages one candidate of one model goes through."""

    def __init__(
        self,
        settings: ModelSettings,
        *,
        source: ModelSource,
        serving: ServingControl,
        state: StateStore,
        clock: Clock,
        promotion: Promotion,
        reporter: Reporter,
        load_timeout: float,
        shadow: str,
        evidence: EvidenceKeeper,
        volume: VolumeLimit | None = None,
        monitoring_url: str | None = None,
        memory: MemoryBudget | None = None,
    ) -> None:
        self.settings, self.name = settings, settings.name
        self.source, self.serving, self.state, self.clock = source, serving, state, clock
        self.promotion, self.reporter = promotion, reporter
        self.load_timeout, self.shadow, self.evidence = load_timeout, shadow, evidence
        self.volume, self.memory = volume, memory
        gates = settings.policy.live_gates
        self.live = LiveWatch(monitoring_url, settings.name, gates) if monitoring_url and gates else None

    def attempt(self, version: int, manifest: Manifest | None, golden: Golden | None) -> PassResult:
        """Stage, validate, promote and bake ``version``; the result says how far it got and why."""
        try:
            self._stage(version, manifest, golden)
        except AgentError as err:
            if err.retryable:
                raise
            return self._reject(version, f"staging: {err.reason}", "quarantined")
        # Before any load of the candidate (shadow or beside the old version); a lone pod never drains.
        self.memory_check(version, drained=False)
        if self.settings.validation == "in_place":
            return self._in_place(version, golden)
        verdict = self._validate(version, golden)
        if not verdict.ok:
            return self._reject(version, f"validation: {verdict.reason}", "rejected")
        return self._promote(version, verdict, golden)

    def _in_place(self, version: int, golden: Golden | None) -> PassResult:
        """``validation: in_place``: one load beside the old version, validated by explicit version; a failed
        candidate is unloaded before the labels ever move. A crash meanwhile leaves the LOAD step recorded,
        which the next pass undoes (Promotion.recover)."""
        old = self.state.get(self.name).serving
        self._baseline()
        refused = self._load(version, old)
        if refused is not None:
            return refused
        verdict = self._validate(version, golden, in_place=True)
        if not verdict.ok:
            self.promotion.withdraw(old)
            return self._reject(version, f"validation: {verdict.reason}", "rejected")
        return self._finish(version, old, verdict, golden)

    def _stage(self, version: int, manifest: Manifest | None, golden: Golden | None) -> None:
        """Bring the version onto the volume, verified (a verified copy already there is reused)."""
        if manifest is None:  # no longer complete in the bucket, e.g. a pinned older version
            if not verify_local(self.settings.local_path, version):
                where = self.source.uri
                raise TransientSourceError(
                    f"version {version} is neither complete in {where} nor intact on disk"
                )
        else:
            progress = DownloadProgress(self.name, manifest, self.clock)
            concurrency = self.settings.download_concurrency
            try:
                staged = stage_version(
                    self.source,
                    manifest,
                    self.settings.local_path,
                    concurrency=concurrency,
                    progress=progress,
                    volume=self.volume,
                )
            except AgentError as err:
                self.reporter.download_failed(err)
                raise
            self.reporter.staged(staged)
        if golden is not None:  # golden inputs as warmup records (docs/tfserving-behaviour.md#b22)
            self.reporter.warmup(version, *try_warmup(self.settings.local_path / str(version), golden))

    def _validate(
        self, version: int, golden: Golden | None, *, in_place: bool = False, alone: bool = False
    ) -> Verdict:
        """``alone``: the shadow validation of a drained pod whose memory holds one version: the serving
        version's signatures are read, it is unloaded, the shadow validated alone, the serving version loaded
        back (the champion's score is then not compared: it is not loaded)."""
        with self.reporter.stage("validate"):
            if in_place:
                verdict = self._in_place_verdict(version, golden)
            elif alone:
                verdict = self._alone_verdict(version, golden)
            else:
                verdict = self._shadow_verdict(version, golden)
        with self.state.update(self.name) as rec:
            rec.last_verdict = verdict.to_json()
        self.reporter.validated(verdict)
        return verdict

    def _in_place_verdict(self, version: int, golden: Golden | None) -> Verdict:
        return validate_in_place(
            self.serving,
            model=self.name,
            version=version,
            golden=golden,
            champion_version=self.state.get(self.name).serving,
            champion_tolerance=self.settings.policy.champion_tolerance,
            signature_change=self.settings.policy.signature_change,
        )

    def _alone_verdict(self, version: int, golden: Golden | None) -> Verdict:
        champion = self.state.get(self.name).serving
        known = None
        if champion is not None:
            with contextlib.suppress(ServingRejectedError):  # nothing to compare with: the gate says so
                known = self.serving.signatures(self.name, version=champion)
        self.promotion.park()
        try:
            return self._shadow_verdict(version, golden, known)
        finally:
            self.promotion.unpark(champion)

    def _shadow_verdict(
        self, version: int, golden: Golden | None, champion_signatures: Mapping[str, Signature] | None = None
    ) -> Verdict:
        return validate_candidate(
            self.serving,
            model=self.name,
            shadow_name=self.shadow,
            base_path=self.settings.local_path,
            version=version,
            golden=golden,
            champion_version=self.state.get(self.name).serving,
            champion_tolerance=self.settings.policy.champion_tolerance,
            load_timeout=self.load_timeout,
            clock=self.clock,
            signature_change=self.settings.policy.signature_change,
            champion_signatures=champion_signatures,
        )

    def _promote(self, version: int, verdict: Verdict, golden: Golden | None) -> PassResult:
        old = self.state.get(self.name).serving
        self._baseline()
        refused = self._load(version, old)
        if refused is not None:
            return refused
        return self._finish(version, old, verdict, golden)

    def _load(self, version: int, old: int | None) -> PassResult | None:
        """Load ``version`` beside ``old`` (labels stay on old); the rejection when it does not load."""
        try:
            with self.reporter.stage("load"):
                self.promotion.load_beside(version, old)
        except ServingUnavailableError:
            # An unreachable server (restarting, say) tells nothing about the version: the pass is a retry and
            # the next one undoes the step (recover) and tries the version again.
            raise
        except AgentError as err:
            # A load failure is final in TF Serving (B6) and a timeout leaves a version nobody can trust:
            # either way the config is already back on the old version; a fix comes as a new version.
            return self._reject(version, f"load: {err.reason}", "quarantined")
        return None

    def swap_in(self, version: int, *, alone: bool = False) -> int | None:
        """A fleet's SWITCH up to the bake, with no second shadow validation (the fleet validated ``version``
        once; loading it is this pod's check). Load ``version`` (beside the old one, or ``alone``:
        unload-first, only out of traffic), move the labels and record it as serving, not yet baked; returns
        the old version. A load failure propagates with the old version serving again: this pod's retry,
        never a verdict (docs/fleet.md). The fleet's drain ends after this, before ``settle``'s bake."""
        old = self.state.get(self.name).serving
        self._baseline()
        with self.reporter.stage("load"):
            if alone:
                self.promotion.load_alone(version, old)
            else:
                self.promotion.load_beside(version, old)
        self._labels_to(version, old, Verdict(version, ok=True))
        return old

    def memory_check(self, version: int, *, drained: bool, why: str = "") -> bool:
        """serving.memory_limit before a load of ``version``: True when it only fits unload-first and the
        pod is ``drained``; MemoryLimitError (a counted retry) when it does not fit as it would be loaded."""
        if self.memory is None:
            return False
        with self.reporter.counting("memory"):
            version_dir = self.settings.local_path / str(version)
            return self.memory.check(self.serving, version_dir, model=self.name, drained=drained, why=why)

    def _finish(
        self,
        version: int,
        old: int | None,
        verdict: Verdict,
        golden: Golden | None,
        bake: float | None = None,
    ) -> PassResult:
        """Labels to the new version, recorded, baked; rolled back if the bake fails."""
        self._labels_to(version, old, verdict)
        return self.settle(version, old, verdict, golden, bake)

    def _labels_to(self, version: int, old: int | None, verdict: Verdict) -> None:
        with self.reporter.stage("promote"):
            self.promotion.switch(version, old)
        self.promotion.commit(version, old)
        self.reporter.serving(version)
        if verdict.metrics:  # a fleet's SWITCH brings no validation of its own (the fleet's was elsewhere)
            self.evidence.promoted(version, verdict.metrics)  # its validation is its first score

    def settle(
        self,
        version: int,
        old: int | None,
        verdict: Verdict,
        golden: Golden | None,
        bake: float | None = None,
        roll_back: RollBack | None = None,
        *,
        resumed: bool = False,
    ) -> PassResult:
        """Bake the version now serving (``bake`` seconds, default the policy's bake_time): done and pruned,
        or rolled back (by ``roll_back`` if given, e.g. the fleet's unload-first way back). The window is
        recorded first, so a restart meanwhile watches the rest of it (``resume``; ``resumed``: this is that
        rest, and a failure's reason says so)."""
        whole = self.settings.policy.bake_time.total_seconds()
        self.promotion.baking(version, whole if bake is None else bake)
        problem = self._bake(version, golden) if bake is None else self.bake(version, bake, golden)
        if problem and resumed:
            problem = f"{RESUMED}: {problem}"
        if problem:
            self.reporter.bake_failed(version, old, problem)
            (roll_back or self.promotion.roll_back)(version, old, f"bake: {problem}")
            self.reporter.rolled_back(version, old, "bake_failed")
            return PassResult(self.name, Outcome.ROLLED_BACK, old, f"{version} failed its bake ({problem})")
        self.promotion.done()
        self.reporter.promoted(verdict, old, self.clock.time())
        self._prune()
        return PassResult(self.name, Outcome.PROMOTED, version, f"serving {version} (was {old})")

    def resume(
        self, pending: Pending, golden: Golden | None, roll_back: RollBack | None = None
    ) -> PassResult:
        """The rest of a bake a restart cut short (``pending`` at BAKE, the version serving again): what is
        left of the recorded window, or the whole bake_time when none was recorded; then done, or rolled back
        to ``pending.previous`` with the same log lines and metrics as an uninterrupted bake. The live gates
        judge the resumed window, without the p99 gate if the baseline taken before the swap died with the
        process (LiveWatch.judge logs it; ADR 28)."""
        version, old = pending.version, pending.previous
        seconds = pending.bake_left(self.clock.time(), self.settings.policy.bake_time.total_seconds())
        last = self.state.get(self.name).last_verdict or {}
        metrics = last.get("metrics", {}) if last.get("version") == version else {}
        verdict = Verdict(version, ok=True, metrics=metrics)
        return self.settle(version, old, verdict, golden, seconds, roll_back, resumed=True)

    def _bake(self, version: int, golden: Golden | None) -> str | None:
        return self.bake(version, self.settings.policy.bake_time.total_seconds(), golden)

    def bake(self, version: int, seconds: float, golden: Golden | None) -> str | None:
        """Watch ``version`` for ``seconds``: AVAILABLE and answering the golden probe, and with live gates
        its own traffic over the window against the baseline taken before the swap."""
        label = self.settings.labels[0] if self.settings.labels else None
        start = self.live.sample() if self.live else None
        with self.reporter.stage("bake"):
            problem = self.promotion.bake(
                version, seconds, lambda: probe_model(self.serving, self.name, golden, label=label)
            )
        if problem or self.live is None or start is None:
            return problem
        return self.live.judge(version, start)

    def _baseline(self) -> None:
        if self.live is not None:
            self.live.baseline()

    def _reject(self, version: int, reason: str, outcome: str) -> PassResult:
        self.promotion.quarantine(version, reason)
        self.reporter.rejected(version, reason, outcome)
        return PassResult(self.name, Outcome.REJECTED, version, reason)

    def _prune(self) -> None:
        record = self.state.get(self.name)
        keep = self.settings.keep_versions
        # keep_versions: 1 keeps the serving version alone: the previous one is then no rollback target.
        kept = (record.serving, record.pinned, record.previous if keep > 1 else None)
        protect = {v for v in kept if v is not None}
        removed = prune_versions(self.settings.local_path, protect=protect, keep=keep)
        if record.previous in removed:
            self.promotion.previous_pruned()
        self.reporter.pruned(removed)
