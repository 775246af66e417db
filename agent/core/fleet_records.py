"""The fleet's records and their JSON form: pure values and parsing, no I/O (docs/fleet.md).

Every record lives under ``<model source>/_fleet/<fleet name>/`` (a non-integer folder, so discovery and TF
Serving ignore it) and carries ``format`` and ``kind``. A record that does not parse — hand-edited, truncated,
written by a newer agent — is a ``FleetRecordError`` naming the object; the protocol never overwrites it
except by a compare-and-swap on the token it read.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from agent.core.errors import FleetRecordError, truncate

FORMAT = 1
RELEASE_NAME = "release.json"
SLOTS_PREFIX = "slots/"
VERDICTS_PREFIX = "verdicts/"
LEDGER_PREFIX = "ledger/"
ARRIVED_PREFIX = "arrived/"
FLEET_FOLDER = "_fleet"
"""``<source>/_fleet/<name>/``: not a canonical integer, so never a version (manifest.version_from_name)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class Phase(enum.StrEnum):
    """A release's phase: validating → canary → rolling → done, or aborted from any of the first three."""

    VALIDATING = "validating"
    CANARY = "canary"
    ROLLING = "rolling"
    DONE = "done"
    ABORTED = "aborted"

    @property
    def settled(self) -> bool:
        """Done or aborted: a new release may start."""
        return self in (Phase.DONE, Phase.ABORTED)


class Purpose(enum.StrEnum):
    """Why a slot is held: the shadow validation, a canary's switch and bake, a rolling switch."""

    VALIDATE = "validate"
    CANARY = "canary"
    ROLL = "roll"


@dataclass(frozen=True)
class Release:
    """The model's one release (CAS-updated): which version the fleet moves to and how far it got."""

    revision: int
    target: int
    previous: int | None
    phase: Phase
    reason: str
    who: str
    when: float
    """The writer's clock (informative only; the protocol compares store timestamps)."""
    canaries: tuple[str, ...] = ()
    """Pods that took the canary role for this revision, at most ``fleet.canary``."""
    baked: tuple[str, ...] = ()
    """Canaries whose live-traffic bake passed."""
    pinned: bool = False
    """Set by ``tfs-agent fleet pin``: pods start no release of their own while it holds."""


@dataclass(frozen=True)
class Verdict:
    """A version rejected for every pod, present and future (create-only; ``fleet clear`` removes it)."""

    version: int
    stage: str
    """validation | canary | operator"""
    reason: str
    who: str
    when: float
    revision: int


@dataclass(frozen=True)
class Slot:
    """One of ``max_unavailable`` permits to load or swap; ``holder`` None: free (released by overwrite)."""

    holder: str | None
    revision: int
    purpose: Purpose | None
    version: int | None
    when: float


@dataclass(frozen=True)
class LedgerEntry:
    """What one pod serves and does, rewritten on every heartbeat (its store timestamp *is* the heartbeat)."""

    pod: str
    serving: int | None
    revision: int
    phase: str
    """The pod's own step: idle | validating | switching | draining | baking | backoff | rolled_back | ..."""
    last_error: str | None
    when: float
    ready: bool | None = None
    """Whether the pod's /readyz said ready at this heartbeat (fleet.drain counts ready pods from it); None
    in entries written before the field existed: then ``serving`` and ``phase`` tell."""

    def counts_ready(self) -> bool:
        """Ready for traffic by this entry: serving a version, not draining, not reported unready."""
        return self.serving is not None and self.phase != DRAINING and self.ready is not False


#: A ledger entry's phase while the pod is out of traffic for a load (fleet.drain).
DRAINING = "draining"

R = TypeVar("R", Release, Verdict, Slot, LedgerEntry)
_KINDS: dict[type[Any], str] = {Release: "release", Verdict: "verdict", Slot: "slot", LedgerEntry: "ledger"}


def _opt(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: v is None or check(v)


def _is_int(v: object) -> bool:
    return type(v) is int and v >= 0


def _is_str(v: object) -> bool:
    return isinstance(v, str)


def _is_num(v: object) -> bool:
    return type(v) in (int, float)


def _is_names(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


_CHECKS: dict[str, Callable[[object], bool]] = {
    "revision": _is_int,
    "target": _is_int,
    "previous": _opt(_is_int),
    "version": _opt(_is_int),
    "serving": _opt(_is_int),
    "phase": _is_str,
    "purpose": _opt(lambda v: v in {p.value for p in Purpose}),
    "holder": _opt(_is_str),
    "last_error": _opt(_is_str),
    "when": _is_num,
    "canaries": _is_names,
    "baked": _is_names,
    "pinned": lambda v: isinstance(v, bool),
    "ready": _opt(lambda v: isinstance(v, bool)),
}


def encode(record: Release | Verdict | Slot | LedgerEntry) -> bytes:
    """Canonical JSON (sorted keys) with ``format`` and ``kind``."""
    doc = {"format": FORMAT, "kind": _KINDS[type(record)], **asdict(record)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode(kind: type[R], data: bytes, *, origin: str) -> R:
    """Parse ``data`` as a ``kind`` record; FleetRecordError naming ``origin`` and the problem otherwise."""
    doc = _document(data, origin)
    _check_header(doc, _KINDS[kind], origin)
    names = {f.name for f in fields(kind)}
    unknown = sorted(set(doc) - names - {"format", "kind"})
    if unknown:
        raise FleetRecordError(f"{origin}: unknown field(s) {', '.join(unknown)} in a format-{FORMAT} record")
    values = {k: v for k, v in doc.items() if k in names}
    for key, value in values.items():
        check = _CHECKS.get(key, _is_str)
        if not check(value):
            raise FleetRecordError(f"{origin}: field {key!r} has a bad value {truncate(repr(value), 80)}")
    try:
        record = kind(**_typed(kind, values))
    except (TypeError, ValueError) as err:
        raise FleetRecordError(f"{origin}: {err}") from err
    return record


def _typed(kind: type[Any], values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for key in ("canaries", "baked"):
        if key in out:
            out[key] = tuple(out[key])
    if kind is Release and "phase" in out:  # a ledger entry's phase is the pod's own free text
        out["phase"] = Phase(out["phase"])
    if out.get("purpose") is not None:
        out["purpose"] = Purpose(out["purpose"])
    return out


def _document(data: bytes, origin: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FleetRecordError(
            f"{origin}: not valid UTF-8 JSON ({err}); fix or replace it with tfs-agent fleet"
        ) from err
    if not isinstance(doc, dict):
        raise FleetRecordError(f"{origin}: the top level must be a JSON object")
    return doc


def _check_header(doc: Mapping[str, Any], kind: str, origin: str) -> None:
    fmt = doc.get("format")
    if type(fmt) is not int:
        raise FleetRecordError(f"{origin}: no integer 'format' field; not a tfs-agent fleet record")
    if fmt > FORMAT:
        raise FleetRecordError(
            f"{origin}: format {fmt} was written by a newer tfs-agent (this one reads {FORMAT}); "
            "upgrade the agent"
        )
    if fmt != FORMAT or doc.get("kind") != kind:
        raise FleetRecordError(f"{origin}: expected a format-{FORMAT} {kind} record, got {doc.get('kind')!r}")


def check_fleet_name(value: str, what: str) -> str:
    """A fleet or pod name is part of object names: letters, digits, ``_ . -``, at most 128."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be letters, digits, _ . - (at most 128), starting alnum")
    return value


def slot_name(index: int) -> str:
    return f"{SLOTS_PREFIX}{index}.json"


def verdict_name(version: int) -> str:
    return f"{VERDICTS_PREFIX}{version}.json"


def ledger_name(pod: str) -> str:
    return f"{LEDGER_PREFIX}{pod}.json"


def arrived_prefix(revision: int) -> str:
    return f"{ARRIVED_PREFIX}{revision}/"


def arrived_name(revision: int, pod: str) -> str:
    return f"{arrived_prefix(revision)}{pod}"


def index_from_name(name: str, prefix: str) -> int | None:
    """``slots/3.json`` → 3 (also for verdicts); None for anything else under the prefix."""
    stem = name[len(prefix) :].removesuffix(".json")
    return int(stem) if name.startswith(prefix) and stem.isdigit() and stem == str(int(stem)) else None


def capacity(max_unavailable: int | str, live: int) -> int:
    """Slots usable now: a count, or ``"N%"`` of the live pods rounded down — never below one."""
    if isinstance(max_unavailable, int):
        return max(1, max_unavailable)
    percent = float(max_unavailable.rstrip("%"))
    return max(1, int(live * percent / 100))
