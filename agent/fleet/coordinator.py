"""One pod's side of the fleet protocol for one model: observe the records, then change them by CAS only.

Every change is a compare-and-swap on the token this pod last read (or create-only). A lost race
(``PreconditionFailed``) or a refused rate (``RateLimitedError``, GCS's ~1 mutation/object/s) returns False:
the caller observes again and re-decides — nothing is retried blindly. Reads are cached by token, so an
unchanged fleet costs one listing per ``observe``.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agent.adapters.sources import open_record_store
from agent.adapters.sources.base import CREATE_ONLY, Expect, Record, RecordStore
from agent.core.errors import FleetRecordError, PreconditionFailed, RateLimitedError
from agent.core.fleet_records import (
    ARRIVED_PREFIX,
    FLEET_FOLDER,
    LEDGER_PREFIX,
    RELEASE_NAME,
    SLOTS_PREFIX,
    LedgerEntry,
    Phase,
    Purpose,
    Release,
    Slot,
    Verdict,
    arrived_name,
    decode,
    encode,
    ledger_name,
    slot_name,
    verdict_name,
)
from agent.fleet.decide import Action, FleetStep, PodState
from agent.fleet.view import FleetParams, FleetView, build_view, release_of
from agent.infra.clock import Clock
from agent.infra.config_fleet import FleetSettings
from agent.infra.logs import event

log = logging.getLogger(__name__)
_SLOT_READS = 3  # changed slots a waiting pod reads per observation: unread ones count as held


class FleetCoordinator:
    """``observe()`` → ``decide(view, pod)`` → ``apply(step, pod)`` or the pipeline's own work, repeated."""

    def __init__(self, store: RecordStore, params: FleetParams, clock: Clock) -> None:
        self.store, self.params, self.clock = store, params, clock
        self._cache: dict[str, Record] = {}
        self._view: FleetView | None = None
        self._ledger_token: str | None = None
        self._lock = threading.RLock()  # a SlotKeeper renews from its own thread
        self.lost_races = 0
        self.rate_limited = 0
        self.takeovers = 0
        self.slots_lost = 0
        """Slots this pod lost to a takeover while a step ran under them (counted by the pipeline)."""

    @property
    def view(self) -> FleetView:
        """The last observation (observing first if there is none)."""
        return self._view or self.observe()

    @property
    def last_view(self) -> FleetView | None:
        """The last observation, or None before the first (never observes)."""
        return self._view

    def ready_others(self) -> tuple[str, ...]:
        """The other pods ready for traffic now, by the ledger: live, holding no slot (a holder may be out
        of traffic), and their last entry serving a version, not draining and not reported unready.

        Observes first with every changed slot read, then reads the live pods' ledger entries (one read per
        pod: asked once per drain decision, never per observation). An unreadable entry is not ready, and
        each slot held by a holder this pod cannot name takes one pod off the count."""
        view = self.observe()
        holders = {s.holder for s in view.slots if s.holder is not None}
        unknown = sum(1 for s in view.slots if s.holder == "?")
        ready = []
        for pod in sorted(view.live - {self.params.pod} - holders):
            record = self.store.read(ledger_name(pod))
            try:
                entry = decode(LedgerEntry, record.data, origin=record.name) if record else None
            except FleetRecordError:
                entry = None
            if entry is not None and entry.counts_ready():
                ready.append(pod)
        return tuple(ready[: max(0, len(ready) - unknown)])

    def observe(self, pod: PodState | None = None) -> FleetView:
        """One listing, plus reads of the release and slot records whose token changed since last time.

        Given the pod's state, slots are read only if this pod may want one (slot records churn with every
        renewal; a pod already on the target has no use for them). An unread slot counts as held."""
        with self._lock:
            return self._observe(pod)

    def _observe(self, pod: PodState | None) -> FleetView:
        listing = self.store.list()
        tokens = {i.name: i.token for i in listing if _cached_kind(i.name)}
        self._cache = {n: r for n, r in self._cache.items() if tokens.get(n) == r.token}
        self._fetch(RELEASE_NAME, tokens)
        release = release_of(self._cache.get(RELEASE_NAME))
        stale = [n for n in tokens if n.startswith(SLOTS_PREFIX) and n not in self._cache]
        for name in stale if pod is None else self._slots_to_read(stale, release, pod):
            self._fetch(name, tokens)
        self._view = build_view(self.params, listing, self._cache)
        return self._view

    def _fetch(self, name: str, tokens: dict[str, str]) -> None:
        if name in tokens and name not in self._cache and (record := self.store.read(name)) is not None:
            self._cache[name] = record

    def _slots_to_read(self, stale: list[str], release: Release | None, pod: PodState) -> list[str]:
        """The changed slots whose bytes can change what decide() tells this pod: none if it needs no
        slot, all while validating or in the canary phase (only slot 0 churns then), else a few, starting
        at its preferred one."""
        if release is None or release.phase is Phase.ABORTED:
            return []
        if release.phase in (Phase.VALIDATING, Phase.CANARY):
            return stale if pod.serving is not None or release.previous is None else []
        if pod.serving == release.target:
            return []
        start = zlib.crc32(self.params.pod.encode())
        ordered = sorted(stale, key=lambda n: (zlib.crc32(n.encode()) - start) % 2**32)
        return ordered[:_SLOT_READS]

    # ---- the steps decide() asks for that touch only the bucket ----

    def apply(self, step: FleetStep, pod: PodState) -> bool:
        """Carry out a bucket-only step; False when a race or rate limit refused it (observe again)."""
        handlers: dict[Action, Callable[[], bool]] = {
            Action.HEARTBEAT: lambda: self.heartbeat(
                LedgerEntry(self.params.pod, pod.serving, self._revision(), "idle", None, self.clock.time())
            ),
            Action.START_RELEASE: lambda: self.start_release(
                _version(step), reason=step.reason, serving=pod.serving
            ),
            Action.TAKE_SLOT: lambda: self.take_slot(
                _index(step), step.purpose or Purpose.ROLL, step.version
            ),
            Action.RELEASE_SLOT: self.release_slot,
            Action.JOIN_CANARY: self.join_canary,
            Action.ARRIVE: self.arrive,
            Action.ADVANCE: lambda: self.advance(step.phase or Phase.DONE, step.reason),
            Action.ABORT: lambda: self.abort(step.reason, stage="verdict"),
        }
        if step.action not in handlers:
            raise ValueError(f"{step.action} is the pipeline's work, not a bucket step")
        return handlers[step.action]()

    def start_release(
        self,
        version: int,
        *,
        reason: str,
        serving: int | None = None,
        phase: Phase = Phase.VALIDATING,
        pinned: bool = False,
        previous: int | None = None,
    ) -> bool:
        """A new revision targeting ``version``; previous is what the fleet serves now (before the fleet's
        first release: what this pod serves, ``serving``), unless given."""
        current = self.view.release
        release = Release(
            revision=self.view.last_revision + 1,
            target=version,
            previous=previous if previous is not None else _fleet_version(current) if current else serving,
            phase=phase,
            reason=reason,
            who=self.params.pod,
            when=self.clock.time(),
            pinned=pinned,
        )
        return self._put_release(release, "release started")

    def take_slot(self, index: int, purpose: Purpose, version: int | None) -> bool:
        """Take slot ``index`` if it is (still) free, released or expired as observed."""
        seen = self.view.slot(index)
        slot = Slot(self.params.pod, self._revision(), purpose, version, self.clock.time())
        expect: Expect = seen.token if seen.token is not None else CREATE_ONLY
        took = self._cas(slot_name(index), encode(slot), expect) is not None
        if took:
            takeover = seen.expired and seen.slot is not None and seen.slot.holder is not None
            self.takeovers += takeover
            self._log("slot taken", slot=index, purpose=purpose, takeover=takeover or None)
        return took

    def renew_slot(self) -> bool:
        """Rewrite the held slot so its store timestamp is fresh; False: the slot was lost (taken over after
        it expired) and the pod must stop what it does under it."""
        mine = self.observe().mine
        if mine is None or mine.slot is None or mine.token is None:
            return False
        renewed = replace(mine.slot, when=self.clock.time())
        return self._cas(slot_name(mine.index), encode(renewed), mine.token) is not None

    def release_slot(self) -> bool:
        """Give the slot back by a conditional overwrite (never a delete: fake-gcs-server ignores its
        precondition, and an unconditional delete could remove a slot taken over meanwhile)."""
        mine = self.view.mine
        if mine is None or mine.token is None:
            return True
        free = Slot(None, self._revision(), None, None, self.clock.time())
        released = self._cas(slot_name(mine.index), encode(free), mine.token) is not None
        if released:
            self._log("slot released", slot=mine.index)
        return released

    def join_canary(self) -> bool:
        """Add this pod to the release's canaries (dead, unbaked canaries give up their place)."""
        release = self._release()
        keep = tuple(c for c in release.canaries if c in release.baked or c in self.view.live)
        return self._put_release(replace(release, canaries=(*keep, self.params.pod)), "canary joined")

    def finish_canary(self, ok: bool, reason: str) -> bool:
        """The canary's live bake passed (recorded, this pod has arrived) or failed (the release aborts)."""
        release = self._release()
        if not ok:
            return self.abort(f"canary {self.params.pod}: {reason}", stage="canary")
        baked = replace(release, baked=(*release.baked, self.params.pod))
        return self._put_release(baked, "canary baked") and self.arrive()

    def record_verdict(self, version: int, ok: bool, reason: str) -> bool:
        """The fleet's one validation of ``version``: passed moves the release on, failed rejects it."""
        release = self._release()
        if version != release.target:
            raise ValueError(f"verdict for {version}, but the release targets {release.target}")
        if not ok:
            return self.abort(f"validation: {reason}", stage="validation")
        phase = Phase.CANARY if self.params.canary > 0 else Phase.ROLLING
        return self._put_release(replace(release, phase=phase, reason=reason), "validated")

    def advance(self, phase: Phase, reason: str = "") -> bool:
        """Move the release to ``phase``; on done, forget old arrivals and long-dead pods."""
        moved = self._put_release(replace(self._release(), phase=phase, reason=reason), f"release {phase}")
        if moved and phase is Phase.DONE:
            self.prune()
        return moved

    def abort(self, reason: str, *, stage: str) -> bool:
        """Reject the release's target for every pod (create-only verdict) and mark the release aborted."""
        release = self._release()
        who, now = self.params.pod, self.clock.time()
        self.write_verdict(Verdict(release.target, stage, reason, who, now, release.revision))
        return self._put_release(replace(release, phase=Phase.ABORTED, reason=reason), "release aborted")

    def set_pinned(self, pinned: bool) -> bool:
        """Pin or unpin the current release (an operator's action)."""
        return self._put_release(replace(self._release(), pinned=pinned), "pinned" if pinned else "unpinned")

    def write_verdict(self, verdict: Verdict) -> bool:
        """Create-only: the first rejection of a version stands (False: one exists already)."""
        return self._cas(verdict_name(verdict.version), encode(verdict), CREATE_ONLY) is not None

    def arrive(self) -> bool:
        """Mark this pod as serving the release's target (create-only, one empty record per pod)."""
        name = arrived_name(self._revision(), self.params.pod)
        return self._cas(name, b"", CREATE_ONLY) is not None or self.params.pod in self.view.arrived

    def heartbeat(self, entry: LedgerEntry) -> bool:
        """Rewrite this pod's ledger entry; its store timestamp is the pod's liveness and clock reference."""
        name = ledger_name(self.params.pod)
        if self._ledger_token is None:
            current = self.store.read(name)
            self._ledger_token = current.token if current else None
        self._ledger_token = self._cas(name, encode(entry), self._ledger_token or CREATE_ONLY)
        return self._ledger_token is not None

    def prune(self) -> int:
        """Remove arrivals of earlier revisions and ledger entries older than forget_after (best effort:
        losing one of these is harmless, so an unconditional delete on the emulator is fine)."""
        view, removed = self.view, 0
        revision = view.release.revision if view.release else 0
        for info in self.store.list(ARRIVED_PREFIX):
            if not info.name.startswith(f"{ARRIVED_PREFIX}{revision}/"):
                removed += self._delete(info.name, info.token)
        for info in self.store.list(LEDGER_PREFIX):
            pod = info.name[len(LEDGER_PREFIX) :].removesuffix(".json")
            if view.ledger_ages.get(pod, 0.0) > self.params.forget_after:
                removed += self._delete(info.name, info.token)
        return removed

    # ---- plumbing ----

    def _release(self) -> Release:
        release = self.view.release
        if release is None:
            raise ValueError("no release to change: observe first and start one")
        return release

    def _revision(self) -> int:
        release = self.view.release
        return release.revision if release else 0

    def _put_release(self, release: Release, what: str) -> bool:
        token = self.view.release_token
        expect: Expect = token if token is not None else CREATE_ONLY
        done = self._cas(RELEASE_NAME, encode(release), expect) is not None
        if done:
            self._log(what, version=release.target, revision=release.revision, phase=release.phase)
        return done

    def _cas(self, name: str, data: bytes, expect: Expect) -> str | None:
        """The new token, or None when the write lost a race or was rate-limited."""
        with self._lock:
            return self._write(name, data, expect)

    def _write(self, name: str, data: bytes, expect: Expect) -> str | None:
        try:
            token = self.store.write(name, data, expect=expect)
        except PreconditionFailed:
            self.lost_races += 1
            self._cache.pop(name, None)
        except RateLimitedError:
            self.rate_limited += 1
        else:
            if _cached_kind(name):  # what this pod wrote need not be read back
                self._cache[name] = Record(name, token, self.clock.time(), data)
            return token
        return None

    def _delete(self, name: str, token: str) -> int:
        try:
            self.store.delete(name, expect=token)
        except (PreconditionFailed, RateLimitedError):
            return 0
        return 1

    def _log(self, what: str, **fields: Any) -> None:
        event(log, f"fleet: {what}", fleet=self.params.fleet, pod=self.params.pod, **fields)


def fleet_uri(source: str, fleet: str) -> str:
    """Where a model's fleet records live: ``<source>/_fleet/<fleet>`` (discovery ignores the folder)."""
    return f"{source.rstrip('/')}/{FLEET_FOLDER}/{fleet}"


def open_coordinator(
    source: str, settings: FleetSettings, clock: Clock, *, endpoint_url: str | None = None
) -> FleetCoordinator:
    """The coordinator for the model at ``source`` (its bucket prefix, reached through ``endpoint_url`` on
    s3:// and az://) in the configured fleet."""
    store = open_record_store(fleet_uri(source, settings.name), endpoint_url=endpoint_url)
    return FleetCoordinator(store, FleetParams.from_settings(settings), clock)


def _cached_kind(name: str) -> bool:
    """The records whose bytes decide() reads: the release and the slots."""
    return name == RELEASE_NAME or name.startswith(SLOTS_PREFIX)


def _fleet_version(release: Release | None) -> int | None:
    """What the fleet serves as a whole: a done release's target, else the last good one before it."""
    if release is None:
        return None
    return release.target if release.phase is Phase.DONE else release.previous


def _version(step: FleetStep) -> int:
    if step.version is None:
        raise ValueError(f"{step.action} needs a version")
    return step.version


def _index(step: FleetStep) -> int:
    if step.slot is None:
        raise ValueError(f"{step.action} needs a slot index")
    return step.slot
