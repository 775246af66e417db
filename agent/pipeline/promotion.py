"""The promotion state machine: the one owner of ``pending`` and of the versions a promotion moves.

A promotion takes a model from ``old`` to ``new`` through TF Serving without a gap in service (the label-safe
two-step swap, docs/tfserving-behaviour.md#b13). Each step is recorded in the state file *before* it is sent,
so a restarted agent knows whether to resume the bake (the new version already serves) or undo (anything
earlier)::

    (none) ─load_beside─▶ LOAD ─switch─▶ SWITCH ─commit─▶ BAKE ─done─▶ (none)
           ─load_alone──▶ LOAD_ALONE ─┘                     │ bake fails or operator
                           │ load fails                    ▼
                           ▼                            ROLLBACK ─▶ (none), old serves, new quarantined
                        (none), old serves

``load_alone`` is the unload-first swap of a drained pod whose memory holds one version only (ADR 24, 25):
old unloaded, then new loaded alone. Its way back (a failed load, a crash before the labels moved) is
unload-first too: whatever is loaded goes, then old alone, then its labels.

The bake's window is recorded as it begins (``baking``): a bake a crash cut short is resumed for what is left
of it (Candidate.resume), and rolled back if it fails, as an uninterrupted bake would be.

Nothing else writes ``pending``, ``serving`` or ``previous`` (the start-up check uses ``forget``). Stage
results (the bake's problem, what ``recover`` did) are returned typed; the reporter logs and counts them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from agent.adapters.tfserving.base import ServingControl
from agent.adapters.tfserving.wait import wait_for_versions, wait_unloaded
from agent.core.domain import ServedModel, VersionState
from agent.core.errors import AgentError, ServingError, ServingUnavailableError
from agent.infra.clock import Clock
from agent.infra.state import Pending, StateStore, Step
from agent.pipeline.observe import state_of

Probe = Callable[[], str | None]
"""A bake check: returns None when the model answers correctly, else what went wrong."""

ROLLBACK_ON_RESTART = "bake failed (rollback finished on restart)"


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


class Recovery(enum.Enum):
    """What ``recover`` did with a promotion a crash interrupted."""

    RESUMED = "resumed"
    """The new version already served (labels on it, recorded as serving): the rest of its bake is due."""
    UNDONE = "undone"
    """Anything earlier: TF Serving went back to the old version."""


@dataclass(frozen=True)
class Recovered:
    outcome: Recovery
    pending: Pending
    serving: int | None


class Promotion:
    """Moves one model between versions and records every step; one instance per model."""

    def __init__(self, swap: Swap, *, serving: ServingControl, state: StateStore, clock: Clock) -> None:
        self.swap = swap
        self.serving = serving
        self.state = state
        self.clock = clock

    @property
    def pending(self) -> Pending | None:
        return self.state.get(self.swap.model).pending

    def _write(self, **fields: object) -> None:
        with self.state.update(self.swap.model) as record:
            for name, value in fields.items():
                setattr(record, name, value)

    def _begin(self, step: Step, new: int, old: int | None) -> None:
        """Record the step about to be sent, with when it began."""
        self._write(pending=Pending(new, old, step, self.clock.time()))

    def _apply(self, versions: Sequence[int | None], label_to: int | None) -> None:
        self.serving.apply({self.swap.model: self.swap.served(versions, label_to)})

    def _wait(self, version: int) -> None:
        wait_for_versions(
            self.serving, self.swap.model, [version], timeout=self.swap.load_timeout, clock=self.clock
        )

    # ---- the way forward ----------------

    def load_beside(self, new: int, old: int | None) -> None:
        """LOAD: serve {old, new} with labels still on old; return once new is AVAILABLE.

        On failure the config goes back to {old} and the promotion is over before the error propagates."""
        self._begin(Step.LOAD, new, old)
        try:
            self._apply([old, new], old)
            self._wait(new)
        except AgentError:
            self.withdraw(old)
            raise

    def load_alone(self, new: int, old: int | None) -> None:
        """LOAD_ALONE (unload-first, only out of traffic): every version of the model unloaded, then new
        loaded alone without labels; return once new is AVAILABLE. The labels move in ``switch``.

        On failure old is loaded back alone (``_only``) and the promotion is over before the error propagates;
        a crash meanwhile leaves LOAD_ALONE recorded, which ``recover`` undoes the same way."""
        self._begin(Step.LOAD_ALONE, new, old)
        try:
            self._unload_all()
            self._apply([new], None)
            self._wait(new)
        except AgentError:
            self._only(old)
            self._write(pending=None)
            raise

    def park(self) -> None:
        """Unload every version of the model (a drained pod validating unload-first); nothing is pending,
        since the recorded serving version is unchanged: a crash meanwhile is mended by ``converge``."""
        self._unload_all()

    def unpark(self, version: int | None) -> None:
        """After ``park``: ``version`` loaded alone again, then its labels."""
        self._only(version)

    def _unload_all(self) -> None:
        """Drop the model and wait for its versions to reach END (B11), so no two versions overlap."""
        self.serving.apply({self.swap.model: None})
        wait_unloaded(self.serving, self.swap.model, timeout=self.swap.load_timeout, clock=self.clock)

    def _only(self, version: int | None) -> None:
        """Unload-first back to ``version`` alone: the model dropped, then version loaded, then its labels
        once it is AVAILABLE (B13)."""
        self._unload_all()
        if version is None:
            return
        self._apply([version], None)
        self._wait(version)
        self._apply([version], version)

    def withdraw(self, old: int | None) -> None:
        """Back from LOAD to {old} with its labels (TF Serving unloads the new version); nothing pending.
        Also ends an ``in_place`` validation the candidate failed: the labels never left old."""
        self._apply([old], old)
        self._write(pending=None)

    def switch(self, new: int, old: int | None) -> None:
        """SWITCH: labels to new, old dropped (TF Serving unloads it once its requests drain, B17)."""
        self._begin(Step.SWITCH, new, old)
        self._apply([new], new)

    def commit(self, new: int, old: int | None) -> None:
        """BAKE: new is the serving version (old kept for rollback) and is being watched."""
        started = self.pending.started if self.pending else self.clock.time()
        self._write(
            serving=new,
            previous=old,
            last_promotion=self.clock.time(),
            pending=Pending(new, old, Step.BAKE, started),
        )

    def baking(self, version: int, seconds: float) -> None:
        """The bake of ``version`` begins now, for ``seconds``: recorded, so a restart watches the rest."""
        pending = self.pending
        if pending is not None and pending.step is Step.BAKE and pending.version == version:
            self._write(pending=replace(pending, bake_started=self.clock.time(), bake_seconds=seconds))

    def done(self) -> None:
        """The promotion is over (baked): nothing is left to finish or undo."""
        self._write(pending=None)

    # ---- the way back ----------------

    def roll_back(
        self, bad: int, good: int | None, reason: str, *, alone: bool = False, quarantine: bool = True
    ) -> None:
        """ROLLBACK: load good beside bad, move labels and drop bad (``alone``: unload-first, bad out before
        good loads — only out of traffic); bad is quarantined locally with ``reason`` unless ``quarantine``
        is False (a fleet's rollback: the fleet's verdict is the quarantine, and `fleet clear` lifts it)."""
        self._begin(Step.ROLLBACK, bad, good)
        if alone:
            self._only(good)
        else:
            if good is not None:
                self._apply([good, bad], bad)
                self._wait(good)
            self._apply([good], good)
        self._settle(serving=good, previous=None, quarantine=(bad, reason) if quarantine else None)

    def previous_pruned(self) -> None:
        """The rollback target left the volume (``keep_versions: 1``): there is none any more."""
        self._write(previous=None)

    def quarantine(self, version: int, reason: str) -> None:
        """Refuse ``version`` from now on (until an operator clears it)."""
        self._settle(quarantine=(version, reason), keep_pending=True)

    def forget(self) -> None:
        """The recorded version is gone from the volume: nothing serves and nothing is in flight."""
        self._settle(serving=None, previous=None)

    def _settle(
        self,
        *,
        quarantine: tuple[int, str] | None = None,
        keep_reason: bool = False,
        keep_pending: bool = False,
        **versions: int | None,
    ) -> None:
        """One state write: the versions given, ``pending`` over (unless kept), a quarantine (an existing
        reason kept if ``keep_reason``)."""
        with self.state.update(self.swap.model) as record:
            for name, value in versions.items():
                setattr(record, name, value)
            if not keep_pending:
                record.pending = None
            if quarantine is not None:
                version, reason = quarantine
                if keep_reason:
                    record.quarantined.setdefault(version, reason)
                else:
                    record.quarantined[version] = reason

    def recover(self) -> Recovered | None:
        """Undo a promotion interrupted by a crash, or (the new version already serves) bring it to its bake:
        RESUMED leaves the BAKE step recorded for the caller to finish (None: nothing was in flight)."""
        pending = self.pending
        if pending is None:
            return None
        live = state_of(self.serving, self.swap.model, pending.version) is VersionState.AVAILABLE
        if pending.step in (Step.SWITCH, Step.BAKE) and live:
            self._apply([pending.version], pending.version)
            if pending.step is Step.SWITCH:  # killed before commit: the bake never began
                self.commit(pending.version, pending.previous)
            return Recovered(Recovery.RESUMED, pending, pending.version)
        if pending.step is Step.LOAD_ALONE or not (
            self._loaded(pending.previous) or self._loaded(pending.version)
        ):
            # Old was unloaded first (or nothing serves at all): back to it alone, unload-first, since
            # loading it beside the new version is the 2x peak this swap avoided; labels once it serves.
            self._only(pending.previous)
        else:
            self._apply([pending.previous], pending.previous)
        if pending.step is Step.ROLLBACK:
            self._settle(
                serving=pending.previous, quarantine=(pending.version, ROLLBACK_ON_RESTART), keep_reason=True
            )
        else:
            self._settle(serving=pending.previous)
        return Recovered(Recovery.UNDONE, pending, pending.previous)

    def _loaded(self, version: int | None) -> bool:
        return version is None or state_of(self.serving, self.swap.model, version) is VersionState.AVAILABLE

    def converge(self, serving: int | None) -> bool:
        """Make TF Serving's config match the recorded serving version (after a restart of either process);
        True if anything had to be sent.

        Asks TF Serving every pass (one GetModelStatus): an unreachable server makes the pass a retry instead
        of an "idle" that hides an outage. Labels are only sent once the version is AVAILABLE (B13).
        """
        if serving is None:
            return False
        wanted = self.swap.served([serving], serving)
        live = state_of(self.serving, self.swap.model, serving) is VersionState.AVAILABLE
        if live and self.serving.configured().get(self.swap.model) == wanted:
            return False
        if not live:
            self._apply([serving], None)
            self._wait(serving)
        self.serving.apply({self.swap.model: wanted})
        return True

    # ---- the bake watch ----------------

    def bake(self, version: int, seconds: float, probe: Probe) -> str | None:
        """Watch the new version for ``seconds``: it must stay AVAILABLE and answer the probe correctly.

        Returns what went wrong, or None. A TF Serving that cannot tell (down, or reloading after its own
        restart) is no verdict on the version: if it still cannot tell at the deadline, the error is raised,
        the step stays recorded as BAKE and a later pass finishes it once the version serves.
        """
        deadline = self.clock.monotonic() + seconds
        interval = min(1.0, max(seconds / 10, 0.05))
        while True:
            try:
                problem, silent = self._bake_once(version, probe), None
            except ServingUnavailableError as err:
                problem, silent = None, err
            if problem:
                return problem
            if self.clock.monotonic() >= deadline:
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
