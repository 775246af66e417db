"""What one pod knows about its fleet after one listing: a pure snapshot that ``decide`` reads.

Built from the store's listing (names, tokens, store timestamps) and the few records whose bytes matter (the
release and the slots). Time here is only ever the *store's*: a slot's age and a ledger entry's staleness
are measured against the store timestamp of this pod's own last heartbeat (ADR 13), so no two pods' clocks are
ever compared.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from agent.adapters.sources.base import Record, RecordInfo
from agent.core.errors import FleetRecordError
from agent.core.fleet_records import (
    ARRIVED_PREFIX,
    LEDGER_PREFIX,
    RELEASE_NAME,
    SLOTS_PREFIX,
    VERDICTS_PREFIX,
    Phase,
    R,
    Release,
    Slot,
    arrived_prefix,
    capacity,
    decode,
    index_from_name,
    slot_name,
)
from agent.infra.config_fleet import FleetSettings


@dataclass(frozen=True)
class FleetParams:
    """The fleet settings the protocol needs, in seconds (built from config.FleetSettings)."""

    fleet: str
    pod: str
    max_unavailable: int | str = 1
    canary: int = 1
    canary_bake: float = 60.0
    slot_ttl: float = 30.0
    heartbeat: float = 10.0
    dead_after: float = 40.0
    """A pod whose ledger entry is older than this (store clock) is not live."""
    forget_after: float = 3600.0
    """A ledger entry older than this is removed."""
    drain: bool = False
    """fleet.drain.enabled: leave the traffic while loading under a slot."""
    drain_wait: float = 5.0
    min_ready: int = 1
    """Never drain when fewer than this many other pods are ready (by the ledger)."""

    @classmethod
    def from_settings(cls, settings: FleetSettings) -> FleetParams:
        return cls(
            fleet=settings.name,
            pod=settings.id,
            max_unavailable=settings.max_unavailable,
            canary=settings.canary,
            canary_bake=settings.canary_bake.total_seconds(),
            slot_ttl=settings.slot_ttl.total_seconds(),
            heartbeat=settings.heartbeat.total_seconds(),
            dead_after=settings.live_window.total_seconds(),
            forget_after=settings.forget_after.total_seconds(),
            drain=settings.drain.enabled,
            drain_wait=settings.drain.wait.total_seconds(),
            min_ready=settings.drain.min_ready,
        )


@dataclass(frozen=True)
class SlotView:
    """One slot as this pod sees it; ``free`` if missing, released or expired."""

    index: int
    slot: Slot | None
    token: str | None
    age: float
    expired: bool
    error: str | None = None

    @property
    def holder(self) -> str | None:
        """Who holds it now (None: free or expired); an unparseable slot is held by nobody we know."""
        if self.token is None or self.expired:
            return None
        if self.slot is None:
            return "?"
        return self.slot.holder

    @property
    def free(self) -> bool:
        return self.holder is None


@dataclass(frozen=True)
class FleetView:
    """One model's fleet state as one pod saw it."""

    pod: str
    params: FleetParams
    release: Release | None
    release_token: str | None
    release_error: str | None
    rejected: frozenset[int]
    slots: tuple[SlotView, ...]
    live: frozenset[str]
    ledger_ages: Mapping[str, float]
    arrived: frozenset[str]
    reference: float | None
    """Store time of this pod's own last heartbeat; None before its first."""
    problems: tuple[str, ...] = ()
    last_revision: int = 0
    """The highest revision any record names (the release's, or arrivals' if the release is unreadable)."""

    @property
    def capacity(self) -> int:
        """Slots usable now: one while validating or in the canary phase, else max_unavailable."""
        if self.release is not None and self.release.phase in (Phase.VALIDATING, Phase.CANARY):
            return 1
        return capacity(self.params.max_unavailable, len(self.live))

    @property
    def mine(self) -> SlotView | None:
        """The slot this pod holds (by the store's record), if any."""
        return next((s for s in self.slots if s.token and s.slot and s.slot.holder == self.pod), None)

    def slot(self, index: int) -> SlotView:
        return next((s for s in self.slots if s.index == index), _missing(index))

    def free_slot(self) -> SlotView | None:
        """A free slot below capacity, so long as the slots held above it (left from a larger capacity)
        leave room: at most ``capacity`` are held after the take. Each pod prefers its own slot (by a hash
        of its id), so pods waiting together race for different ones. Unread slots count as held."""
        held_above = sum(1 for s in self.slots if s.index >= self.capacity and not s.free)
        free = [s for i in range(self.capacity) if (s := self.slot(i)).free]
        if len(free) <= held_above:
            return None
        return free[zlib.crc32(self.pod.encode()) % len(free)]


def _missing(index: int) -> SlotView:
    return SlotView(index, None, None, 0.0, False)


def build_view(
    params: FleetParams, listing: tuple[RecordInfo, ...], records: Mapping[str, Record]
) -> FleetView:
    """The snapshot from one listing and the bytes of the release and slot records named in it."""
    problems: list[str] = []
    groups = _by_folder(listing)
    release_info = next(iter(groups.get(RELEASE_NAME, ())), None)
    reference = _reference(params, groups.get(LEDGER_PREFIX, []))
    ages = _ledger_ages(groups.get(LEDGER_PREFIX, []), reference)
    live = frozenset(p for p, age in ages.items() if age <= params.dead_after) | {params.pod}
    release, release_error = _release(records.get(RELEASE_NAME) if release_info else None)
    if release_error:
        problems.append(release_error)
    slots = tuple(
        _slot(params, i, records.get(i.name), reference, problems) for i in groups.get(SLOTS_PREFIX, [])
    )
    arrived = arrived_prefix(release.revision if release else -1)
    return FleetView(
        pod=params.pod,
        params=params,
        release=release,
        release_token=release_info.token if release_info else None,
        release_error=release_error,
        rejected=frozenset(
            v
            for i in groups.get(VERDICTS_PREFIX, [])
            if (v := index_from_name(i.name, VERDICTS_PREFIX)) is not None
        ),
        slots=tuple(s for s in slots if s is not None),
        live=live,
        ledger_ages=ages,
        arrived=frozenset(
            i.name[len(arrived) :] for i in groups.get(ARRIVED_PREFIX, []) if i.name.startswith(arrived)
        ),
        reference=reference,
        problems=tuple(problems),
        last_revision=max([release.revision if release else 0, *_arrival_revisions(groups)]),
    )


def _arrival_revisions(groups: Mapping[str, list[RecordInfo]]) -> list[int]:
    heads = (i.name[len(ARRIVED_PREFIX) :].partition("/")[0] for i in groups.get(ARRIVED_PREFIX, []))
    return [int(h) for h in heads if h.isdigit()]


def _rejected(verdicts: list[RecordInfo]) -> frozenset[int]:
    """A verdict's name is the rejection; its bytes (the reason) are for ``fleet status``."""
    return frozenset(v for i in verdicts if (v := index_from_name(i.name, VERDICTS_PREFIX)) is not None)


def _by_folder(listing: tuple[RecordInfo, ...]) -> dict[str, list[RecordInfo]]:
    """Records grouped by their first path segment (``slots/``, ``ledger/``, ... or ``release.json``)."""
    groups: dict[str, list[RecordInfo]] = {}
    for info in listing:
        head, sep, _ = info.name.partition("/")
        groups.setdefault(head + sep, []).append(info)
    return groups


def _reference(params: FleetParams, ledger: list[RecordInfo]) -> float | None:
    name = f"{LEDGER_PREFIX}{params.pod}.json"
    return next((i.updated for i in ledger if i.name == name), None)


def _ledger_ages(ledger: list[RecordInfo], reference: float | None) -> dict[str, float]:
    """Each pod's heartbeat age by the store's clock (0 for all while this pod has no heartbeat yet)."""
    return {
        i.name[len(LEDGER_PREFIX) : -len(".json")]: max(0.0, (reference or i.updated) - i.updated)
        for i in ledger
        if i.name.endswith(".json")
    }


def release_of(record: Record | None) -> Release | None:
    """The release in ``record``, or None if there is none or it does not parse."""
    return _release(record)[0]


def _release(record: Record | None) -> tuple[Release | None, str | None]:
    if record is None:
        return None, None
    try:
        return _parsed(Release, record.data, record.name), None
    except FleetRecordError as err:
        return None, str(err)


def _slot(
    params: FleetParams, info: RecordInfo, record: Record | None, reference: float | None, problems: list[str]
) -> SlotView | None:
    index = index_from_name(info.name, SLOTS_PREFIX)
    if index is None:
        return None
    age = max(0.0, reference - info.updated) if reference is not None else 0.0
    # Expiry only once this pod has a heartbeat to measure with; the margin covers timestamp granularity.
    expired = reference is not None and age > params.slot_ttl + 1.0
    if record is None or record.token != info.token:
        return SlotView(index, None, info.token, age, expired, "not read")
    try:
        slot = _parsed(Slot, record.data, slot_name(index))
    except FleetRecordError as err:
        problems.append(str(err))
        return SlotView(index, None, info.token, age, expired, str(err))
    return SlotView(index, slot, info.token, age, expired)


@functools.lru_cache(maxsize=4096)
def _parsed(kind: type[R], data: bytes, origin: str) -> R:
    """Records are immutable values: the same bytes parse to the same record (pods re-read few of them)."""
    return decode(kind, data, origin=origin)
