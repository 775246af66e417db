"""Servable state tracking: what GetModelStatus reports and what ReloadConfig waits on (B12, B14, B15).

Why a separate event stream: the stock manager publishes each transition (START, LOADING, AVAILABLE,
UNLOADING, END) on an event bus; GetModelStatus reads the latest state per version (END entries kept forever),
while ReloadConfig waits with a *fresh* listener that only sees events published after the reload began, so an
old END of a re-added model does not satisfy the wait.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tfs_devserver.status import ServingError

log = logging.getLogger("tensorflow_serving.core.servable_state_monitor")


class ManagerState(enum.IntEnum):
    """``ModelVersionStatus.State`` of get_model_status.proto (B14): the numbers GetModelStatus reports."""

    UNKNOWN = 0
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass(frozen=True)
class ServableState:
    """One version's latest published state; ``error`` is None when its status is OK."""

    name: str
    version: int
    state: ManagerState
    error: ServingError | None = None


def servable_id(name: str, version: int) -> str:
    """ServableId::DebugString, as stock messages print it."""
    return f"{{name: {name} version: {version}}}"


class _Listener:
    """Records events published after it was created (the stock 'fresh ServableStateMonitor')."""

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        self.states: dict[str, dict[int, ServableState]] = {}

    def record(self, state: ServableState) -> None:
        self.states.setdefault(state.name, {})[state.version] = state

    def reached(self, name: str) -> ServableState | None:
        """Highest version of ``name`` that is AVAILABLE or END, if any."""
        for version in sorted(self.states.get(name, {}), reverse=True):
            state = self.states[name][version]
            if state.state in (ManagerState.AVAILABLE, ManagerState.END):
                return state
        return None

    def wait_for(self, names: set[str], stop: threading.Event) -> dict[str, ServableState] | None:
        """Block until every name reached AVAILABLE or END; None if ``stop`` is set first."""
        with self._cond:
            while not stop.is_set():
                reached = {name: self.reached(name) for name in names}
                if all(reached.values()):
                    return {name: state for name, state in reached.items() if state is not None}
                self._cond.wait(0.1)
        return None


class StateMonitor:
    """The event bus plus the latest state of every version ever seen."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._states: dict[str, dict[int, ServableState]] = {}
        self._listeners: list[_Listener] = []

    def publish(self, state: ServableState) -> None:
        """Record a transition and wake anyone waiting on it."""
        suffix = f" with error {state.error}" if state.error else ""
        log.info(
            "Servable %s transitioned to %s%s",
            servable_id(state.name, state.version),
            state.state.name,
            suffix,
        )
        with self._cond:
            self._states.setdefault(state.name, {})[state.version] = state
            for listener in self._listeners:
                listener.record(state)
            self._cond.notify_all()

    def get(self, name: str, version: int) -> ServableState | None:
        """Latest state of one version, if it was ever seen."""
        with self._cond:
            return self._states.get(name, {}).get(version)

    def versions(self, name: str) -> list[ServableState]:
        """Latest state of every version of a model, highest version first."""
        with self._cond:
            states = self._states.get(name, {})
            return [states[v] for v in sorted(states, reverse=True)]

    @contextmanager
    def listener(self) -> Iterator[_Listener]:
        """A fresh listener for the duration of the block."""
        listener = _Listener(self._cond)
        with self._cond:
            self._listeners.append(listener)
        try:
            yield listener
        finally:
            with self._cond:
                self._listeners.remove(listener)
