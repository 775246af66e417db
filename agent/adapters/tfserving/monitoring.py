"""Live-traffic gates from TF Serving's own Prometheus endpoint (``--monitoring_config_file``; B21 in
docs/tfserving-behaviour.md).

``scrape(url, model)`` reads ``:tensorflow:serving:request_count`` by status and the
``:tensorflow:serving:request_latency`` histogram (microseconds) of one model; ``judge(before, during, after,
gates)`` compares the bake window (``after - during``) with the pod's own baseline before the swap
(``before``, everything counted since TF Serving started): the window's error ratio, the ratio of its p99 to
the baseline's, with a minimum request count. The text exposition is parsed with prometheus_client's parser.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from agent.core.errors import ServingUnavailableError

_COUNT = ":tensorflow:serving:request_count"
_LATENCY = ":tensorflow:serving:request_latency"


@dataclass(frozen=True)
class LiveGates:
    max_error_ratio: float
    max_p99_ratio: float
    min_requests: int


@dataclass(frozen=True)
class Sample:
    """Cumulative counts of one model since its TF Serving started."""

    ok: float = 0.0
    errors: float = 0.0
    buckets: tuple[tuple[float, float], ...] = field(default=())
    """(upper bound in µs, cumulative count), ascending, +Inf last."""

    @property
    def total(self) -> float:
        return self.ok + self.errors

    def minus(self, earlier: Sample) -> Sample:
        """The window between ``earlier`` and this sample (a restart resets the counters: then this alone)."""
        if self.total < earlier.total:
            return self
        old = dict(earlier.buckets)
        buckets = tuple((le, count - old.get(le, 0.0)) for le, count in self.buckets)
        return Sample(self.ok - earlier.ok, self.errors - earlier.errors, buckets)

    def p99(self) -> float | None:
        """The 99th percentile's bucket bound in µs (None: no observations)."""
        if not self.buckets or self.buckets[-1][1] <= 0:
            return None
        rank = 0.99 * self.buckets[-1][1]
        finite = [le for le, _ in self.buckets if not math.isinf(le)]
        for le, count in self.buckets:
            if count >= rank:
                return le if not math.isinf(le) else (finite[-1] if finite else None)
        return None


def parse(text: str, model: str) -> Sample:
    """One model's request counts and latency histogram from the text exposition."""
    ok = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("model_name") != model:
                continue
            if s.name == _COUNT or (family.name == _COUNT and s.name == f"{_COUNT}_total"):
                if s.labels.get("status") == "OK":
                    ok += s.value
                else:
                    errors += s.value
            elif s.name == f"{_LATENCY}_bucket":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    return Sample(ok, errors, tuple(sorted(buckets.items())))


def scrape(url: str, model: str, timeout: float = 10.0) -> Sample:
    """Fetch and parse; an unreachable endpoint is a ServingUnavailableError (no verdict on the version)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError) as err:
        raise ServingUnavailableError(f"TF Serving monitoring at {url}: {err}") from err
    return parse(text, model)


def judge(baseline: Sample, window: Sample, gates: LiveGates) -> tuple[str | None, str]:
    """(problem or None, what was measured). Too few requests in the window: no judgement (None)."""
    if window.total < gates.min_requests:
        return None, f"{window.total:g} requests in the bake window (< {gates.min_requests}): not judged"
    ratio = window.errors / window.total
    seen = f"{window.total:g} requests, error ratio {ratio:.3f}"
    if ratio > gates.max_error_ratio:
        return f"error ratio {ratio:.3f} > {gates.max_error_ratio:g} over {window.total:g} requests", seen
    base_p99, p99 = baseline.p99(), window.p99()
    if base_p99 and p99:
        slower = p99 / base_p99
        seen += f", p99 {p99 / 1000:.1f} ms = {slower:.2f}x baseline"
        if slower > gates.max_p99_ratio:
            return f"p99 {p99 / 1000:.1f} ms is {slower:.2f}x the baseline (> {gates.max_p99_ratio:g}x)", seen
    return None, seen
