"""Fresh evidence for the performance policy, gathered once per pass before the planner runs.

- **Golden:** when the golden file changes (``GoldenFeed``), or the serving version's score is older than
  ``policy.rescore_interval``, the serving version is re-scored through TF Serving on the current golden
  data (``score_version``: same Predict path as validation, explicit version, no shadow). A new generation
  is adopted — for the serving score *and* for candidates — only once it parsed and fit the serving
  version's signature, so a broken refresh changes no verdict. Each score goes to the state file with its
  time and generation, and to ``tfs_agent_validation_metric{role="serving"}``.
- **Live:** ``replace_below: {query: ...}`` is evaluated on Prometheus (``MetricQuery``); no data, a
  refused query or an unreachable Prometheus is reported and holds the candidate.

Problems are named in /status (``evidence``) and, through the Reporter, in ``tfs_agent_evidence_ok{source}``
and one log line per transition. This object is the only writer of ``serving_score`` and
``golden_generation`` in the state file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from agent.adapters.prometheus import MetricQuery
from agent.adapters.tfserving.base import ServingControl
from agent.core.errors import GoldenFileError, MetricQueryError
from agent.core.evidence import Evidence, LiveFloor, LiveReading, Score
from agent.core.golden import Golden
from agent.infra.clock import Clock
from agent.infra.state import StateStore
from agent.pipeline.golden_feed import GoldenData, GoldenFeed
from agent.pipeline.report import Reporter
from agent.pipeline.validate import score_version

GOLDEN, PROMETHEUS = "golden", "prometheus"


class EvidenceKeeper:
    """One model's golden data, its serving version's latest score, and its live reading."""

    def __init__(
        self,
        model: str,
        *,
        feed: GoldenFeed | None,
        serving: ServingControl,
        state: StateStore,
        reporter: Reporter,
        clock: Clock,
        rescore_interval: timedelta = timedelta(minutes=10),
        live: MetricQuery | None = None,
        live_floor: LiveFloor | None = None,
    ) -> None:
        self.model, self.feed, self.serving = model, feed, serving
        self.state, self.reporter, self.clock = state, reporter, clock
        self.interval = rescore_interval.total_seconds()
        self.live, self.live_floor = live, live_floor
        self.reading: LiveReading | None = None
        self.problems: dict[str, str] = {}
        reporter.evidence_sources(
            [s for s, used in ((GOLDEN, feed is not None), (PROMETHEUS, live_floor is not None)) if used]
        )
        score = self.score
        if score is not None:  # after a restart, the recorded score until the next one
            reporter.scored(score, logged=False)

    # ---- what the pass uses ----------------

    @property
    def score(self) -> Score | None:
        raw = self.state.get(self.model).serving_score
        return Score.from_json(raw) if raw else None

    def golden(self) -> Golden | None:
        """The golden data candidates are validated on: the last good generation. Raises GoldenFileError
        when a golden file is configured but none could be used yet (the pass fails; nothing is judged)."""
        if self.feed is None:
            return None
        if self.feed.good is None:
            raise GoldenFileError(self.problems.get(GOLDEN) or f"golden file {self.feed.uri} not read yet")
        return self.feed.good.golden

    def check_golden(self) -> Golden | None:
        """The golden data as it would be used now, reading the file if nothing good is in use yet; raises
        GoldenFileError when it cannot be used (``tfs-agent once`` and start-up report that as config)."""
        if self.feed is None:
            return None
        data = self.feed.poll() or self.feed.good
        if data is None:
            raise GoldenFileError(f"golden file {self.feed.uri} not read yet")
        return data.golden

    def evidence(self) -> Evidence:
        good = self.feed.good if self.feed else None
        return Evidence(
            score=self.score,
            golden_generation=good.generation if good else None,
            live=self.reading,
            problems=dict(self.problems),
        )

    # ---- refresh, once per pass ----------------

    def refresh(self, serving_version: int | None) -> Evidence:
        """Notice a changed golden file, re-score the serving version when due, read the live metric.

        An unreachable TF Serving or bucket propagates (the pass is a retry); everything else is reported,
        not raised."""
        if self.feed is not None:
            self._refresh_golden(serving_version)
        if self.live is not None and self.live_floor is not None and serving_version is not None:
            self._read_live(self.live, self.live_floor)
        return self.evidence()

    def _refresh_golden(self, version: int | None) -> None:
        assert self.feed is not None
        try:
            fresh = self.feed.poll()
        except GoldenFileError as err:
            self._problem(GOLDEN, f"golden refresh not used: {err.reason}", type(err).__name__)
            return
        candidate = fresh or self.feed.good
        if candidate is None:
            return
        if version is not None and self._due(version, candidate.generation):
            if not self._rescore(version, candidate, fresh is not None):
                return
        elif fresh is not None:  # nothing serves, or a restart found the generation its recent score is on
            self._adopt(fresh)
        if self.feed.in_sync:  # the file in the bucket is the one in use: nothing left out
            self._clear(GOLDEN)

    def _due(self, version: int, generation: str) -> bool:
        score = self.score
        if score is None or score.version != version or score.generation != generation:
            return True
        return self.clock.time() - score.scored_at >= self.interval

    def _rescore(self, version: int, data: GoldenData, new: bool) -> bool:
        """Score the serving version on ``data`` (adopting it when new); False when it does not fit."""
        assert self.feed is not None
        try:
            metrics = score_version(self.serving, self.model, version, data.golden)
        except GoldenFileError as err:
            self.feed.reject()
            what = f"golden generation {data.generation}" if new else "the golden data"
            self._problem(GOLDEN, f"{what} not used: {err.reason}", "SignatureMismatch")
            return False
        if new:
            self._adopt(data)
        self.record(Score(version, metrics, data.generation, self.clock.time()))
        return True

    def _adopt(self, data: GoldenData) -> None:
        assert self.feed is not None
        self.feed.adopt(data)
        with self.state.update(self.model) as record:
            record.golden_generation = data.generation
        self.reporter.golden_in_use(data.generation)

    def record(self, score: Score) -> None:
        """The serving version's latest score (on a re-score, or a promotion's own verdict)."""
        with self.state.update(self.model) as record:
            record.serving_score = score.to_json()
        self.reporter.scored(score)

    def promoted(self, version: int, metrics: Mapping[str, float]) -> None:
        """A new version serves: its validation scored it on the golden data in use."""
        good = self.feed.good if self.feed else None
        if good is not None:
            self.record(Score(version, dict(metrics), good.generation, self.clock.time()))

    def _read_live(self, live: MetricQuery, floor: LiveFloor) -> None:
        now = self.clock.time()
        try:
            value = live.query(floor.query)
        except MetricQueryError as err:
            self.reading = LiveReading(None, now, err.reason)
            self._problem(PROMETHEUS, err.reason, type(err).__name__)
            return
        self.reading = LiveReading(value, now)
        if value is None:
            self._problem(PROMETHEUS, f"no data for {floor.query}", "NoData")
        else:
            self._clear(PROMETHEUS)

    # ---- reporting ----------------

    def _problem(self, source: str, reason: str, kind: str) -> None:
        self.reporter.evidence_problem(source, reason, kind, new=self.problems.get(source) != reason)
        self.problems[source] = reason

    def _clear(self, source: str) -> None:
        self.reporter.evidence_ok(source, recovered=self.problems.pop(source, None) is not None)

    def status(self) -> dict[str, Any]:
        """The /status view: the latest score, the golden generation in use, the live reading, problems."""
        score, good, reading = self.score, self.feed.good if self.feed else None, self.reading
        return {
            "serving_score": score.to_json() if score else None,
            "golden_generation": good.generation if good else None,
            "live": None
            if reading is None or self.live_floor is None
            else {
                "query": self.live_floor.query,
                "value": reading.value,
                "error": reading.error,
                "read_at": reading.read_at,
            },
            "problems": dict(self.problems),
        }
