"""An in-memory ``RecordStore`` that enforces what GCS documents: for unit tests and the fleet simulation.

412 on a stale generation or a create-only write to an existing object, and — when ``mutation_interval`` is
set — 429 for a second mutation of one object within that interval (GCS: "about one write per second to
the same object name"). Its clock is injected, so the simulation's store stamps ``updated`` with simulated
time; ``ops`` counts every request by kind, ``rate_limited`` every 429.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from agent.adapters.sources.base import CREATE_ONLY, Expect, Record, RecordInfo
from agent.core.errors import PreconditionFailed, RateLimitedError
from agent.core.manifest import check_name
from agent.infra.clock import Clock


@dataclass
class _Stored:
    data: bytes
    generation: int
    updated: float
    last_mutation: float


class MemoryRecordStore:
    """A ``RecordStore`` over a dict; thread-safe, so racing threads see one winner."""

    def __init__(
        self, clock: Clock, *, uri: str = "mem://bucket/model/_fleet/default", mutation_interval: float = 0.0
    ) -> None:
        self._uri, self._clock, self.mutation_interval = uri, clock, mutation_interval
        self._objects: dict[str, _Stored] = {}
        self._deleted_at: dict[str, float] = {}
        self._generation = 0
        self._listing: tuple[RecordInfo, ...] | None = None
        self._lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.rate_limited = 0

    @property
    def uri(self) -> str:
        return self._uri

    def read(self, name: str) -> Record | None:
        with self._lock:
            self.ops["read"] += 1
            stored = self._objects.get(check_name(name, where=self._uri))
            if stored is None:
                return None
            return Record(name, str(stored.generation), stored.updated, stored.data)

    def peek(self, name: str) -> bytes | None:
        """The bytes of a record without counting a request (the simulation's own bookkeeping)."""
        with self._lock:
            stored = self._objects.get(name)
            return stored.data if stored else None

    def write(self, name: str, data: bytes, *, expect: Expect) -> str:
        with self._lock:
            self.ops["write"] += 1
            now = self._clock.time()
            current = self._objects.get(check_name(name, where=self._uri))
            self._check_rate(name, current, now)
            _check_precondition(self._uri, name, current, expect)
            self._generation += 1
            self._objects[name] = _Stored(bytes(data), self._generation, now, now)
            self._listing = None
            return str(self._generation)

    def list(self, prefix: str = "") -> tuple[RecordInfo, ...]:
        with self._lock:
            self.ops["list"] += 1
            if self._listing is None:  # the simulation lists far more often than it writes
                self._listing = tuple(
                    RecordInfo(n, str(s.generation), s.updated) for n, s in sorted(self._objects.items())
                )
            return (
                self._listing if not prefix else tuple(i for i in self._listing if i.name.startswith(prefix))
            )

    def delete(self, name: str, *, expect: str) -> None:
        with self._lock:
            self.ops["delete"] += 1
            current = self._objects.get(name)
            if current is None:
                return
            now = self._clock.time()
            self._check_rate(name, current, now)
            _check_precondition(self._uri, name, current, expect)
            del self._objects[name]
            self._listing = None
            self._deleted_at[name] = now

    def _check_rate(self, name: str, current: _Stored | None, now: float) -> None:
        last = current.last_mutation if current is not None else self._deleted_at.get(name)
        if self.mutation_interval and last is not None and now - last < self.mutation_interval:
            self.rate_limited += 1
            raise RateLimitedError(
                f"{self._uri}/{name}: HTTP 429 more than one mutation per {self.mutation_interval:g}s"
            )


def _check_precondition(uri: str, name: str, current: _Stored | None, expect: Expect) -> None:
    if expect is CREATE_ONLY:
        if current is not None:
            raise PreconditionFailed(f"{uri}/{name}: HTTP 412 exists already (create-only write)")
    elif current is None or str(current.generation) != expect:
        found = "no object" if current is None else f"generation {current.generation}"
        raise PreconditionFailed(f"{uri}/{name}: HTTP 412 expected generation {expect}, found {found}")
