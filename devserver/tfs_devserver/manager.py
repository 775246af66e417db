"""The aspired-versions manager: which versions load and unload, when, and in what order (B5, B6, B17).

Why it mirrors TF Serving's AspiredVersionsManager so closely: the agent's safety argument rests on its
quirks. Each ~100 ms tick the manager (1) forgets un-aspired versions that are new, failed or unloaded, (2)
applies the latest aspired-versions list per model (deferring a list that re-aspires a version still being
forgotten), and (3) asks the availability-preserving policy for at most one action per model, unloads first.
Loads and unloads run on worker threads, so a slow load never blocks requests to other versions. A version
whose load failed stays failed while it is aspired (never retried, B6); an unload first removes the version
from routing, then waits for its in-flight requests (B17).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import enum
import gc
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from tfs_devserver.monitor import ManagerState, ServableState, StateMonitor, servable_id
from tfs_devserver.servable import Servable
from tfs_devserver.status import Code, ServingError, from_exception

log = logging.getLogger("tensorflow_serving.core.basic_manager")

Loader = Callable[[str, int, str], Servable]
TICK_SECONDS = 0.1  # the stock manage_state_interval_micros


class _Harness(enum.Enum):
    NEW = "new"
    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"
    DISABLED = "disabled"
    ERROR = "error"


@dataclass(eq=False)
class _Slot:
    """One managed version (TF Serving's LoaderHarness plus its 'is_aspired' flag)."""

    name: str
    version: int
    path: str
    aspired: bool = True
    state: _Harness = _Harness.NEW
    servable: Servable | None = None
    in_flight: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class ManagerOptions:
    """Retry and threading knobs from the command line."""

    max_num_load_retries: int = 5
    load_retry_interval_seconds: float = 60.0
    num_load_threads: int = 0
    num_unload_threads: int = 0


@dataclass(frozen=True)
class _Action:
    unload: bool
    slot: _Slot


class Manager:
    """Owns every version's lifecycle; ``set_aspired`` is its input, ``handle`` its request-path output."""

    def __init__(self, *, loader: Loader, monitor: StateMonitor, options: ManagerOptions) -> None:
        self._loader = loader
        self._monitor = monitor
        self._options = options
        self._cond = threading.Condition()
        self._slots: dict[str, dict[int, _Slot]] = {}
        self._pending: dict[str, dict[int, str]] = {}
        self._stop = threading.Event()
        # Stock default 0 = loads run one at a time on the manager thread; here they never block the tick, and
        # two workers keep one stuck load (e.g. a warmup waiting on a file) from wedging every other model.
        self._load_pool = ThreadPoolExecutor(max(2, options.num_load_threads), thread_name_prefix="load")
        self._unload_pool = ThreadPoolExecutor(
            max(1, options.num_unload_threads), thread_name_prefix="unload"
        )
        self._thread = threading.Thread(target=self._run, name="manager", daemon=True)

    # ---- inputs -------------------------------------------------------------------------------------------
    def set_aspired(self, name: str, versions: dict[int, str]) -> None:
        """The source's latest aspired versions (version -> path) for a model; replaces any pending list."""
        with self._cond:
            self._pending[name] = dict(versions)

    def start(self) -> None:
        """Start the tick thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking and cancel pending retries; loaded models are simply dropped with the process."""
        self._stop.set()
        with self._cond:
            for slots in self._slots.values():
                for slot in slots.values():
                    slot.cancel.set()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._load_pool.shutdown(wait=False, cancel_futures=True)
        self._unload_pool.shutdown(wait=False, cancel_futures=True)

    # ---- request path ------------------------------------------------------------------------------------
    @contextmanager
    def handle(self, name: str, version: int | None) -> Iterator[Servable]:
        """Borrow a READY servable (``version`` None = highest); NOT_FOUND (stock message) otherwise."""
        slot = self._acquire(name, version)
        try:
            assert slot.servable is not None
            yield slot.servable
        finally:
            with self._cond:
                slot.in_flight -= 1
                self._cond.notify_all()

    def _acquire(self, name: str, version: int | None) -> _Slot:
        with self._cond:
            ready = {v: s for v, s in self._slots.get(name, {}).items() if s.state is _Harness.READY}
            chosen = max(ready) if version is None and ready else version
            slot = ready.get(chosen) if chosen is not None else None
            if slot is None:
                request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: {request}")
            slot.in_flight += 1
            return slot

    def available_versions(self, name: str) -> list[int]:
        """Versions of a model that currently serve, ascending."""
        with self._cond:
            return sorted(v for v, s in self._slots.get(name, {}).items() if s.state is _Harness.READY)

    # ---- the tick ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception:  # a bug in one tick must not stop the manager for good
                log.exception("manager tick failed")

    def tick(self) -> None:
        """One manager pass: flush, apply pending aspired lists, then one policy action per model."""
        with self._cond:
            self._flush()
            self._apply_pending()
            actions = [a for a in (self._policy(n) for n in sorted(self._slots)) if a is not None]
            for action in sorted(actions, key=lambda a: not a.unload):
                self._start(action)

    def _flush(self) -> None:
        for name, slots in self._slots.items():
            for version, slot in list(slots.items()):
                if slot.aspired or slot.state not in (_Harness.NEW, _Harness.DISABLED, _Harness.ERROR):
                    continue
                del slots[version]
                if slot.state is _Harness.NEW:
                    self._publish(slot, ManagerState.END)
                log.info("Stopped managing servable %s", servable_id(name, version))

    def _apply_pending(self) -> None:
        for name, versions in list(self._pending.items()):
            slots = self._slots.setdefault(name, {})
            if any(v in slots and not slots[v].aspired for v in versions):
                continue  # re-aspired versions must be flushed first (stock: request postponed)
            del self._pending[name]
            for version, slot in slots.items():
                if version not in versions and slot.aspired:
                    slot.aspired = False
                    slot.cancel.set()
            for version in sorted(versions):
                if version not in slots:
                    slots[version] = _Slot(name, version, versions[version])
                    self._publish(slots[version], ManagerState.START)

    def _policy(self, name: str) -> _Action | None:
        """AvailabilityPreservingPolicy::GetNextAction."""
        slots = list(self._slots[name].values())
        aspired = [s for s in slots if s.aspired]
        has_aspired_ready = any(s.state is _Harness.READY for s in aspired)
        unaspired_ready = [s for s in slots if not s.aspired and s.state is _Harness.READY]
        if unaspired_ready and (not aspired or has_aspired_ready or len(unaspired_ready) > 1):
            return _Action(True, min(unaspired_ready, key=lambda s: s.version))
        new = [s for s in aspired if s.state is _Harness.NEW]
        if new:
            return _Action(False, max(new, key=lambda s: s.version))
        return None

    def _start(self, action: _Action) -> None:
        slot = action.slot
        if action.unload:
            slot.state = _Harness.UNLOADING
            self._publish(slot, ManagerState.UNLOADING)
            self._unload_pool.submit(self._unload, slot)
        else:
            slot.state = _Harness.LOADING
            self._load_pool.submit(self._load, slot)

    # ---- workers -----------------------------------------------------------------------------------------
    def _attempt_loads(self, slot: _Slot) -> Servable | ServingError:
        attempt = 0
        while True:
            try:
                return self._loader(slot.name, slot.version, slot.path)
            except Exception as exc:
                error = from_exception(exc)
            log.error("Loading servable: %s failed: %s", servable_id(slot.name, slot.version), error)
            if attempt >= self._options.max_num_load_retries or slot.cancel.is_set() or self._stop.is_set():
                return error
            attempt += 1
            log.info(
                "Retrying of Loading servable: %s retry: %d", servable_id(slot.name, slot.version), attempt
            )
            if slot.cancel.wait(self._options.load_retry_interval_seconds):
                log.info(
                    "Retrying of Loading servable: %s was cancelled.", servable_id(slot.name, slot.version)
                )
                return error

    def _load(self, slot: _Slot) -> None:
        log.info("Approving load for servable version %s", servable_id(slot.name, slot.version))
        self._publish(slot, ManagerState.LOADING)
        result = self._attempt_loads(slot)
        with self._cond:
            if isinstance(result, ServingError):
                slot.state = _Harness.ERROR
                self._publish(slot, ManagerState.END, result)
            else:
                slot.servable = result
                slot.state = _Harness.READY
                log.info("Successfully loaded servable version %s", servable_id(slot.name, slot.version))
                self._publish(slot, ManagerState.AVAILABLE)

    def _unload(self, slot: _Slot) -> None:
        with self._cond:
            while slot.in_flight:
                self._cond.wait()
            servable, slot.servable = slot.servable, None
        if servable is not None:
            servable.close()
        gc.collect()
        with self._cond:
            slot.state = _Harness.DISABLED
            log.info("Done unloading servable version %s", servable_id(slot.name, slot.version))
            self._publish(slot, ManagerState.END)

    def _publish(self, slot: _Slot, state: ManagerState, error: ServingError | None = None) -> None:
        self._monitor.publish(ServableState(slot.name, slot.version, state, error))
