"""What the swap benchmark, the fault matrix and its test share: a recorder of what the agent and TF Serving
did, when, and the analysis of the load generator's samples against it.

Why a recorder outside the agent: the claims under test ("no request failed", "only validated versions
answered", "the swap costs this much latency") must be checked from the outside, not taken from the agent's
own reports. It watches two files the agent writes (the agent is not told it is watched):
- the agent's state file, re-read whenever it is replaced; each write's file mtime is *when the agent
  recorded* a step (``pending.step`` load/switch/bake/rollback, ``serving``, ``quarantined``), to the
  millisecond — the JSON logs only carry whole seconds;
- the model config file the agent hands TF Serving (the shadow model appears there during validation, labels
  move there before ReloadConfig is sent).
TF Serving's own view comes from its log (benchmarks/swap.py) or from GetModelStatus when a check needs it.
Triggers (``Recorder.arm``) run in the watcher thread as soon as a change is seen, so a fault (SIGKILL of the
agent at a given step) lands within a millisecond or two of that step being recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from agent.adapters.tfserving import config_text
from agent.core.domain import ServedModel
from agent.service.demo.serverlog import load_spans, unloads
from testkit.stack import MODEL, Stack

SHADOW = MODEL + "__candidate"
LABEL = "stable"


@dataclass(frozen=True)
class View:
    """The agent's latest recorded state of the model and the config file it last wrote."""

    at: float
    record: Mapping[str, Any]
    config: Mapping[str, ServedModel]

    @property
    def step(self) -> tuple[int, str] | None:
        """(version, step) of the promotion in flight, if any."""
        pending = self.record.get("pending")
        return (int(pending["version"]), str(pending["step"])) if pending else None

    @property
    def serving(self) -> int | None:
        value = self.record.get("serving")
        return None if value is None else int(value)

    def labelled(self) -> int | None:
        """The version the config file points the label at."""
        model = self.config.get(MODEL)
        return dict(model.labels).get(LABEL) if model else None


Trigger = Callable[[View], bool]


@dataclass
class _Armed:
    check: Trigger
    action: Callable[[], object] | None
    fired: threading.Event = field(default_factory=threading.Event)


class Recorder:
    """A background watcher of the state file and the config file; see the module docstring.

    ``views`` holds every change seen (of either file), in order. ``every``: seconds between stat() calls."""

    def __init__(self, stack: Stack, *, every: float = 0.001) -> None:
        self.stack = stack
        self.state_path = stack.volume / ".tfs-agent" / "state.json"
        self.every = every
        self.views: list[View] = []
        self._armed: list[_Armed] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._record: Mapping[str, Any] = {}
        self._config: Mapping[str, ServedModel] = {}
        self._thread = threading.Thread(target=self._watch, name="recorder", daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    # ---- triggers ----

    def arm(self, check: Trigger, action: Callable[[], object] | None = None) -> threading.Event:
        """Run ``action`` (in the watcher thread) the first time ``check`` holds for a new view; the returned
        event is set once it has run."""
        armed = _Armed(check, action)
        with self._lock:
            self._armed.append(armed)
        return armed.fired

    def disarm_all(self) -> None:
        with self._lock:
            self._armed.clear()

    def latest(self) -> View:
        with self._lock:
            return self.views[-1] if self.views else View(time.time(), {}, {})

    # ---- the watcher ----

    def _watch(self) -> None:
        seen: dict[Path, int] = {}
        while not self._stop.wait(self.every):
            changed = False
            for path in (self.state_path, self.stack.config_file):
                with contextlib.suppress(OSError, ValueError):
                    changed |= self._reread(path, seen)
            if changed:
                self._fire()

    def _reread(self, path: Path, seen: dict[Path, int]) -> bool:
        """Re-read ``path`` if it was replaced since last time; True when the view changed."""
        if os.stat(path).st_mtime_ns == seen.get(path):
            return False
        with path.open("rb") as handle:
            mtime, data = os.fstat(handle.fileno()).st_mtime_ns, handle.read()
        seen[path] = mtime
        if path == self.state_path:
            self._record = json.loads(data)["models"].get(MODEL, {})
        else:
            self._config = {m.name: m for m in config_text.parse(data.decode())}
        with self._lock:
            self.views.append(View(mtime / 1e9, self._record, self._config))
        return True

    def _fire(self) -> None:
        view = self.latest()
        with self._lock:
            due = [a for a in self._armed if not a.fired.is_set() and a.check(view)]
            self._armed = [a for a in self._armed if a not in due]
        for armed in due:
            if armed.action is not None:
                armed.action()
            armed.fired.set()

    # ---- reading the record ----

    def first(self, check: Trigger, after: float = 0.0) -> float | None:
        """When a view satisfying ``check`` was first recorded (at or after ``after``)."""
        with self._lock:
            views = list(self.views)
        return next((v.at for v in views if v.at >= after and check(v)), None)

    def promoted_at(self) -> dict[int, float]:
        """Each version the agent promoted (recorded serving, or at step switch/bake) → the earliest sign of
        it: that record, or the config file moving the label to it (written before ReloadConfig is sent). An
        answer from a version before this time, or from a version not here at all, was not validated."""
        with self._lock:
            views = list(self.views)

        def signs(view: View) -> set[int | None]:
            step = view.step
            return {view.serving, step[0] if step and step[1] in ("switch", "bake") else None}

        promoted = set().union(*(signs(v) for v in views)) - {None}
        out: dict[int, float] = {}
        for view in views:
            for version in (signs(view) | {view.labelled()}) & promoted:
                out.setdefault(int(version), view.at)  # type: ignore[arg-type]
        return out


def scrape(stack: Stack, family: str) -> list[tuple[str, dict[str, str], float]]:
    """(sample name, labels, value) of one metric family on the agent's /metrics now."""
    assert stack.agent is not None
    code, body = stack.agent.get("/metrics")
    if code != 200:
        return []
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for fam in text_string_to_metric_families(body.decode())
        if fam.name == family
        for sample in fam.samples
    ]


def counter(stack: Stack, family: str, **labels: str) -> float:
    """A counter's value on the agent's /metrics now (``family`` without ``_total``), summed over the series
    matching ``labels``."""
    return sum(
        value
        for name, have, value in scrape(stack, family)
        if name == family + "_total" and all(have.get(k) == v for k, v in labels.items())
    )


# ---- the load generator's samples ----


@dataclass(frozen=True)
class Samples:
    """The load generator's samples as arrays: start (wall clock), latency (s), version (-1: failed), and
    for a failed request its gRPC status code name (``""`` for an answer, ``"?"`` from a load file older than
    the per-failure codes)."""

    start: np.ndarray[Any, np.dtype[np.float64]]
    latency: np.ndarray[Any, np.dtype[np.float64]]
    version: np.ndarray[Any, np.dtype[np.int64]]
    code: np.ndarray[Any, np.dtype[np.str_]]

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> Samples:
        rows = sorted(result["samples"])
        data = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
        codes = {float(start): str(code) for start, code in result.get("failures", ())}
        code = [codes.get(float(s), "?") if v < 0 else "" for s, _, v in rows]
        return cls(data[:, 0], data[:, 1], data[:, 2].astype(np.int64), np.asarray(code, dtype=np.str_))

    @property
    def end(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        return self.start + self.latency

    def inside(self, windows: Iterable[tuple[float, float]]) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Mask of requests that overlap any (start, end) window."""
        mask = np.zeros(len(self.start), dtype=bool)
        for lo, hi in windows:
            mask |= (self.end >= lo) & (self.start <= hi)
        return mask

    def failed(self, mask: np.ndarray[Any, np.dtype[np.bool_]] | None = None) -> int:
        failed = self.version < 0
        return int(np.count_nonzero(failed if mask is None else failed & mask))

    def unvalidated(self, promoted_at: Mapping[int, float]) -> list[tuple[float, int]]:
        """(start, version) of every answer from a version not promoted by the time the answer came back."""
        wrong = []
        for start, end, version in zip(self.start, self.end, self.version, strict=True):
            if version >= 0 and not (version in promoted_at and promoted_at[int(version)] <= end):
                wrong.append((float(start), int(version)))
        return wrong


# ---- a fleet's failed requests, by time ----


def aborted_bakes(server_log: str, model: str, bad: Sequence[int]) -> list[tuple[float, float, int]]:
    """(from, to, version) on one server (its log): each load of an aborted version as ``model`` (not its
    shadow: a validation takes no traffic) until that version's unload finished, the canary's rollback; a
    version never unloaded stays open to the end."""
    done = [(t, v) for t, name, v in unloads(server_log) if name == model]
    windows = []
    for start, _, name, version in load_spans(server_log):
        if name == model and version in bad:
            end = min((t for t, v in done if v == version and t >= start), default=float("inf"))
            windows.append((start, end, version))
    return windows


def failures_in_windows(
    loads: dict[str, dict[str, Any]], windows: dict[str, list[tuple[float, float, int]]], started: float
) -> list[dict[str, Any]]:
    """Every failed request: seconds since the benchmark started, pod, gRPC code, and whether it started
    inside an aborted canary's bake window on that pod (a load file without codes gives code "?")."""
    records = []
    for pod, result in loads.items():
        codes = {float(t): str(code) for t, code in result.get("failures", ())}
        for start, _, version in result["samples"]:
            if version < 0:
                inside = any(a <= start <= b for a, b, _ in windows[pod])
                records.append(
                    {
                        "t_s": round(start - started, 3),
                        "pod": pod,
                        "code": codes.get(float(start), "?"),
                        "in_aborted_bake": inside,
                    }
                )
    return sorted(records, key=lambda r: r["t_s"])


def percentiles(
    values: Sequence[float] | np.ndarray[Any, Any], qs: Sequence[float] = (50, 99)
) -> list[float]:
    """Percentiles in milliseconds (NaN for no values)."""
    arr = np.asarray(values, dtype=np.float64)
    return [float(np.percentile(arr, q) * 1000) if arr.size else float("nan") for q in qs]


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")
    return path
