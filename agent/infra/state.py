"""The agent's memory across restarts: one small JSON file, written atomically (temp + fsync + rename).

It records what the agent has proven (the serving and rollback versions), what it refuses (quarantine with
reasons), operator intent (pin), and the step of an in-flight promotion so a SIGKILL at any point is finished
or undone by the next pass.
"""

from __future__ import annotations

import copy
import enum
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.core.errors import AgentError
from agent.infra.files import write_atomic

STATE_FORMAT = 1


class Step(enum.StrEnum):
    """The last step of a promotion begun (agent/pipeline/promotion.py owns the transitions between them).

    Stored as its value, so state files written before the steps were typed load unchanged."""

    LOAD = "load"
    """{old, new} sent, waiting for new to be AVAILABLE."""
    LOAD_ALONE = "load_alone"
    """Unload-first (a drained pod, memory for one version only): old unloaded, then new alone, waited for."""
    SWITCH = "switch"
    """Labels to new, old dropped."""
    BAKE = "bake"
    """New serves all traffic, being watched."""
    ROLLBACK = "rollback"
    """Going back to ``previous``."""


@dataclass(frozen=True)
class Pending:
    """A promotion in flight: moving the model from ``previous`` to ``version``; ``step``: last step begun.

    ``bake_started`` (epoch s) and ``bake_seconds``: the bake window, recorded as the bake begins, so a
    restart watches what is left of it (absent from older state files: unknown)."""

    version: int
    previous: int | None
    step: Step
    started: float
    bake_started: float | None = None
    bake_seconds: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.step, Step):  # a string from the state file
            object.__setattr__(self, "step", Step(self.step))

    def bake_left(self, now: float, whole: float) -> float:
        """Seconds of the bake window still to watch at ``now``: ``whole`` when no window was recorded (a
        crash before the bake began, or an older state file); a clock gone back counts as no time passed."""
        if self.bake_started is None or self.bake_seconds is None:
            return whole
        return self.bake_seconds - min(max(now - self.bake_started, 0.0), self.bake_seconds)

    def to_json(self) -> dict[str, Any]:
        """The window's fields only once recorded: a file without one is byte-for-byte what it was."""
        data = asdict(self)
        for name in ("bake_started", "bake_seconds"):
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pending:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ModelRecord:
    """What the agent knows about one model."""

    serving: int | None = None
    previous: int | None = None
    quarantined: dict[int, str] = field(default_factory=dict)
    pinned: int | None = None
    pending: Pending | None = None
    last_promotion: float | None = None
    last_poll: float | None = None
    last_poll_ok: float | None = None
    last_error: str | None = None
    serving_score: dict[str, Any] | None = None
    """The serving version's latest golden score: version, metrics, golden generation, when (epoch s)."""
    golden_generation: str | None = None
    """The golden file's generation candidates are validated on (the last one that parsed and fit)."""
    last_verdict: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["quarantined"] = {str(k): v for k, v in self.quarantined.items()}
        data["pending"] = self.pending.to_json() if self.pending else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRecord:
        data = dict(data)
        data["quarantined"] = {int(k): str(v) for k, v in data.get("quarantined", {}).items()}
        pending = data.get("pending")
        data["pending"] = Pending.from_json(pending) if pending else None
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class StateStore:
    """Loads and saves every model's record; one lock, so concurrent passes never interleave writes."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"
        self._lock = threading.RLock()
        self._models: dict[str, ModelRecord] = {}
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            raise AgentError(
                f"state file {self.path} is unreadable ({err}); move it aside to start from the bucket again"
            ) from err
        if raw.get("format") != STATE_FORMAT:
            raise AgentError(
                f"state file {self.path} has format {raw.get('format')!r}, expected {STATE_FORMAT}"
            )
        try:
            self._models = {name: ModelRecord.from_json(rec) for name, rec in raw.get("models", {}).items()}
        except (TypeError, ValueError, AttributeError) as err:
            raise AgentError(
                f"state file {self.path} has a record that does not parse ({err}); move it aside to start "
                "from the bucket again"
            ) from err

    def get(self, model: str) -> ModelRecord:
        with self._lock:
            return self._models.setdefault(model, ModelRecord())

    @contextmanager
    def update(self, model: str) -> Iterator[ModelRecord]:
        """Mutate a copy of a model's record; it replaces the record and is persisted only when the block ends
        without error, so a failed step leaves neither memory nor disk half-changed."""
        with self._lock:
            before = self.get(model)
            record = copy.deepcopy(before)
            yield record
            self._models[model] = record
            try:
                self.save()
            except BaseException:
                self._models[model] = before  # memory never runs ahead of the file
                raise

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: rec.to_json() for name, rec in self._models.items()}

    def save(self) -> None:
        with self._lock:
            payload = {"format": STATE_FORMAT, "models": self.snapshot()}
            write_atomic(self.path, json.dumps(payload, indent=2, sort_keys=True).encode())
