"""The label-safe swap (TFSERVING.md B13), the bake watch, and the way back.

Every step is recorded in the state file *before* it is sent to TF Serving, so a restarted agent knows
whether to finish (the new version already serves) or undo (anything earlier).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.adapters.tfserving.base import ServingControl
from agent.adapters.tfserving.wait import wait_for_versions
from agent.core.domain import ServedModel, VersionState
from agent.core.errors import AgentError, ServingError, ServingUnavailableError
from agent.infra.clock import Clock
from agent.infra.logs import event
from agent.infra.state import Pending, StateStore

log = logging.getLogger("tfs_agent.promote")

Probe = Callable[[], str | None]
"""A bake check: returns None when the model answers correctly, else what went wrong."""


@dataclass(frozen=True)
class Swap:
    """Everything the swap needs to know about one model."""

    model: str
    base_path: Path
    labels: Sequence[str]
    load_timeout: float

    def served(self, versions: Sequence[int | None], label_to: int | None) -> ServedModel | None:
        wanted = tuple(sorted({v for v in versions if v is not None}))
        if not wanted:
            return None
        labels = tuple((lb, label_to) for lb in sorted(self.labels)) if label_to is not None else ()
        return ServedModel(self.model, str(self.base_path), wanted, labels)


class Promoter:
    """Moves a model between versions through TF Serving without a gap in service."""

    def __init__(self, swap: Swap, *, serving: ServingControl, state: StateStore, clock: Clock) -> None:
        self.swap = swap
        self.serving = serving
        self.state = state
        self.clock = clock

    def _mark(self, pending: Pending | None) -> None:
        """Record the step about to be sent (None: no promotion in flight)."""
        with self.state.update(self.swap.model) as record:
            record.pending = pending

    def load_beside(self, new: int, old: int | None) -> None:
        """Step 1: serve {old, new} with labels still on old; return once new is AVAILABLE.

        On failure the config goes back to {old} before the error propagates.
        """
        self._mark(Pending(new, old, "load", self.clock.time()))
        try:
            self.serving.apply({self.swap.model: self.swap.served([old, new], old)})
            wait_for_versions(
                self.serving, self.swap.model, [new], timeout=self.swap.load_timeout, clock=self.clock
            )
        except AgentError:
            self.restore(old)
            raise

    def switch(self, new: int, old: int | None) -> None:
        """Step 2: labels to new, old dropped (TF Serving unloads it once its requests drain, B17)."""
        self._mark(Pending(new, old, "switch", self.clock.time()))
        self.serving.apply({self.swap.model: self.swap.served([new], new)})

    def done(self) -> None:
        """The promotion is over (baked, or finished after a restart): nothing is left to finish or undo."""
        self._mark(None)

    def restore(self, version: int | None) -> None:
        """Make TF Serving serve exactly ``version`` (None: remove the model) and clear the pending step."""
        self.serving.apply({self.swap.model: self.swap.served([version], version)})
        self._mark(None)

    def roll_back(self, bad: int, good: int | None) -> None:
        """Label-safe return from ``bad`` to ``good``: load good beside bad, then move labels and drop bad."""
        self._mark(Pending(bad, good, "rollback", self.clock.time()))
        if good is not None:
            self.serving.apply({self.swap.model: self.swap.served([good, bad], bad)})
            wait_for_versions(
                self.serving, self.swap.model, [good], timeout=self.swap.load_timeout, clock=self.clock
            )
        self.restore(good)

    def bake(self, version: int, seconds: float, probe: Probe) -> str | None:
        """Watch the new version for ``seconds``: it must stay AVAILABLE and answer the probe correctly.

        Returns what went wrong, or None. A TF Serving that cannot tell (down, or reloading after its own
        restart) is no verdict on the version: if it still cannot tell at the deadline, the error is raised,
        the step stays recorded as ``bake`` and a later pass finishes it once the version serves.
        """
        deadline = self.clock.time() + seconds
        interval = min(1.0, max(seconds / 10, 0.05))
        while True:
            try:
                problem, silent = self._bake_once(version, probe), None
            except ServingUnavailableError as err:
                problem, silent = None, err
            if problem:
                return problem
            if self.clock.time() >= deadline:
                if silent is not None:
                    raise silent
                return None
            self.clock.sleep(interval)

    def _bake_once(self, version: int, probe: Probe) -> str | None:
        states = {s.version: s for s in self.serving.status(self.swap.model)}
        current = states.get(version)
        if current is not None and current.state in (VersionState.START, VersionState.LOADING):
            raise ServingUnavailableError(
                f"version {version} is {current.state.name}: TF Serving is reloading"
            )
        if current is None or current.state is not VersionState.AVAILABLE:
            shown = current.state.name if current else "absent"
            return f"version {version} is {shown} in TF Serving"
        try:
            return probe()
        except ServingUnavailableError:
            raise
        except ServingError as err:
            return f"{type(err).__name__}: {err}"


def recover(promoter: Promoter, pending: Pending) -> tuple[str, int | None]:
    """Finish or undo a promotion interrupted by a crash. Returns (what was done, version now serving)."""
    model = promoter.swap.model
    states = {s.version: s.state for s in promoter.serving.status(model)}
    live = states.get(pending.version) is VersionState.AVAILABLE
    if pending.step in ("switch", "bake") and live:
        promoter.switch(pending.version, pending.previous)
        promoter.done()
        event(log, "recovered: finished promotion", model=model, version=pending.version, step=pending.step)
        return "finished", pending.version
    promoter.restore(pending.previous)
    event(
        log,
        "recovered: undid promotion",
        model=model,
        version=pending.version,
        step=pending.step,
        serving=pending.previous,
    )
    return "undone", pending.previous
