"""Request and load metrics in TensorFlow Serving's Prometheus format (B21).

Why not prometheus_client: the stock exporter's names start with ``:`` (every non ``[A-Za-z0-9_]`` character
of ``/tensorflow/serving/request_count`` becomes ``:``) and its histograms use TensorFlow's exponential bucket
limits in microseconds; a few dozen lines reproduce that exactly. The stock metrics carry no version label, so
the per-version series the issue asks for are separate ``:tfs_devserver:*`` metrics.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import bisect
import re
import threading
from dataclasses import dataclass, field

from tfs_devserver.status import Code

DEFAULT_PATH = "/monitoring/prometheus/metrics"
# monitoring::Buckets::Exponential(10, 1.8, 33): 10 us up to ~20 minutes.
LATENCY_BUCKETS_US = [10 * 1.8**i for i in range(33)]

Labels = tuple[tuple[str, str], ...]


def prometheus_name(name: str) -> str:
    """TF's exporter rule: every character outside ``[A-Za-z0-9_]`` becomes ``:``."""
    return re.sub(r"[^A-Za-z0-9_]", ":", name)


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_US) + 1))
    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_US, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: Labels) -> list[str]:
        out, running = [], 0
        for limit, bucket in zip([*LATENCY_BUCKETS_US, float("inf")], self.counts, strict=True):
            running += bucket
            le = "+Inf" if limit == float("inf") else _number(round(limit, 6))
            le_label = f'le="{le}"'
            out.append(f"{name}_bucket{_labels(labels, le_label)} {running}")
        out.append(f"{name}_sum{_labels(labels)} {_number(self.total)}")
        out.append(f"{name}_count{_labels(labels)} {self.count}")
        return out


class Metrics:
    """Thread-safe counters and latency histograms, rendered on demand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {}

    def _inc(self, name: str, labels: Labels) -> None:
        series = self._counters.setdefault(prometheus_name(name), {})
        series[labels] = series.get(labels, 0) + 1

    def _observe(self, name: str, labels: Labels, value: float) -> None:
        self._histograms.setdefault(prometheus_name(name), {}).setdefault(labels, _Histogram()).add(value)

    def record_request(
        self, model: str, version: int | None, api: str, entrypoint: str, code: Code, seconds: float
    ) -> None:
        """One finished request: the stock per-model series plus the devserver's per-version ones."""
        micros = seconds * 1e6
        shown = "" if version is None else str(version)
        with self._lock:
            self._inc("/tensorflow/serving/request_count", (("model_name", model), ("status", code.name)))
            self._observe(
                "/tensorflow/serving/request_latency",
                (("model_name", model), ("API", api), ("entrypoint", entrypoint)),
                micros,
            )
            per_version = (
                ("model_name", model),
                ("version", shown),
                ("API", api),
                ("entrypoint", entrypoint),
            )
            self._inc("/tfs_devserver/request_count", (*per_version, ("status", code.name)))
            self._observe("/tfs_devserver/request_latency", per_version, micros)

    def record_load(self, path: str, ok: bool, seconds: float) -> None:
        """One load attempt of a SavedModel (stock: /tensorflow/cc/saved_model/load_attempt_count)."""
        with self._lock:
            status = "success" if ok else "fail"
            self._inc(
                "/tensorflow/cc/saved_model/load_attempt_count", (("model_path", path), ("status", status))
            )
            self._observe("/tensorflow/cc/saved_model/load_latency", (("model_path", path),), seconds * 1e6)

    def render(self) -> str:
        """The Prometheus text exposition of every series."""
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._counters):
                lines.append(f"# TYPE {name} counter")
                lines += [f"{name}{_labels(k)} {_number(v)}" for k, v in sorted(self._counters[name].items())]
            for name in sorted(self._histograms):
                lines.append(f"# TYPE {name} histogram")
                for key, hist in sorted(self._histograms[name].items()):
                    lines += hist.lines(name, key)
        return "\n".join(lines) + "\n"
