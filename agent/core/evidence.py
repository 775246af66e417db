"""Evidence for the performance policy, as plain values: the serving version's latest golden score and the
latest live reading, and how each compares with its floor — with the numbers, so a held candidate says why.

The performance policy ("replace the serving version only once it performs below a threshold") needs
evidence that moves with the world: a score on the *current* golden data (re-scored when the file changes)
or a live metric from Prometheus. No evidence, or evidence that cannot be read, never replaces a version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from agent.core.checks import worse_by
from agent.core.golden import HIGHER_IS_BETTER


@dataclass(frozen=True)
class Score:
    """One version's metrics on one generation of the golden file, and when they were measured."""

    version: int
    metrics: Mapping[str, float]
    generation: str
    scored_at: float

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "metrics": dict(self.metrics),
            "generation": self.generation,
            "scored_at": self.scored_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Score:
        metrics = data.get("metrics")
        return cls(
            version=int(str(data["version"])),
            metrics=MappingProxyType(
                {str(k): float(v) for k, v in (metrics.items() if isinstance(metrics, dict) else ())}
            ),
            generation=str(data.get("generation", "")),
            scored_at=float(str(data.get("scored_at", 0.0))),
        )


@dataclass(frozen=True)
class LiveFloor:
    """``replace_below: {query: ..., below: 0.8}`` (or ``above:`` for error-like metrics)."""

    query: str
    below: float | None = None
    above: float | None = None
    name: str = "live metric"

    def crossed(self, value: float) -> bool:
        if self.below is not None:
            return value < self.below
        return self.above is not None and value > self.above

    def compare(self, value: float) -> str:
        """``online accuracy 0.83 ≥ 0.8 (query …)``: the value, the relation to the floor, the query."""
        limit = self.below if self.below is not None else self.above
        if self.below is not None:
            sign = "<" if self.crossed(value) else "≥"
        else:
            sign = ">" if self.crossed(value) else "≤"
        return f"{self.name} {value:.4g} {sign} {limit:.4g} (query {self.query})"


@dataclass(frozen=True)
class LiveReading:
    """What the live query answered at ``read_at``: a value, no data (None), or an error."""

    value: float | None
    read_at: float
    error: str | None = None


@dataclass(frozen=True)
class Judgement:
    """One evidence source's view: ``degraded`` replaces the serving version; the reason has the numbers."""

    degraded: bool
    reason: str


def judge_score(
    score: Score | None,
    thresholds: Mapping[str, float],
    *,
    generation: str | None,
    now: float,
) -> Judgement:
    """The golden floor: degraded once a metric is worse than its threshold on the current golden data."""
    if score is None:
        return Judgement(False, "the serving version has no golden score yet")
    if generation is not None and score.generation != generation:
        return Judgement(
            False,
            f"the serving version is not scored on golden generation {generation} yet "
            f"(last score on {score.generation})",
        )
    unmeasured = sorted(set(thresholds) - set(score.metrics))
    if unmeasured:  # a golden file without labels cannot measure them: never hold a version forever on that
        return Judgement(True, f"serving {', '.join(unmeasured)} not measured by the golden file")
    where = f"on golden generation {score.generation} scored {ago(now - score.scored_at)}"
    parts = [_compare(name, score.metrics[name], limit) for name, limit in sorted(thresholds.items())]
    degraded = any(worse_by(n, score.metrics[n], limit) > 0 for n, limit in thresholds.items())
    return Judgement(degraded, f"serving {', '.join(parts)} {where}")


def _compare(name: str, value: float, limit: float) -> str:
    worse = worse_by(name, value, limit) > 0
    signs = ("<", "≥") if name in HIGHER_IS_BETTER else (">", "≤")
    sign = signs[0] if worse else signs[1]
    return f"{name} {value:.4g} {sign} {limit:.4g}"


def judge_live(reading: LiveReading | None, floor: LiveFloor, *, now: float) -> Judgement:
    """The live floor: degraded once the query's value crosses it. No data or an error holds."""
    if reading is None:
        return Judgement(False, f"{floor.name} not read yet (query {floor.query})")
    if reading.error is not None:
        return Judgement(False, f"{floor.name} unavailable, holding: {reading.error}")
    if reading.value is None:
        return Judgement(False, f"{floor.name} has no data, holding (query {floor.query})")
    return Judgement(floor.crossed(reading.value), floor.compare(reading.value))


def ago(seconds: float) -> str:
    """``just now``, ``42 s ago``, ``3 min ago``, ``2 h ago``."""
    if seconds < 1:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


@dataclass(frozen=True)
class Evidence:
    """Everything the planner may weigh for the performance policy, at one pass."""

    score: Score | None = None
    golden_generation: str | None = None
    live: LiveReading | None = None
    problems: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Evidence that could not be refreshed this pass (by source: golden, prometheus), for /status."""
