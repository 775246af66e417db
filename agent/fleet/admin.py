"""An operator's fleet actions, done on the bucket itself so they reach every pod: status, pin, unpin,
rollback, abort, clear.

Each action re-reads the fleet, checks what it must on that fresh view, and changes it by CAS; a lost race
is re-read and re-checked (up to a few times), never re-sent. A refusal is a ``FleetRefusedError`` saying why
and what to do instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from agent.core.errors import FleetRecordError, FleetRefusedError
from agent.core.fleet_records import (
    LEDGER_PREFIX,
    VERDICTS_PREFIX,
    LedgerEntry,
    Phase,
    Release,
    Verdict,
    decode,
    index_from_name,
    verdict_name,
)
from agent.fleet.coordinator import FleetCoordinator
from agent.fleet.view import FleetView

_ATTEMPTS = 5
OPERATOR = "operator"


def status(coordinator: FleetCoordinator) -> dict[str, Any]:
    """The release, every verdict with its reason, every slot and one row per pod, plus any record that
    does not parse (named)."""
    view = coordinator.observe()
    problems = list(view.problems)
    return {
        "uri": coordinator.store.uri,
        "release": _release_doc(view.release),
        "verdicts": _verdicts(coordinator, problems),
        "slots": [
            {"slot": s.index, "holder": s.holder, "age_s": round(s.age, 1), "expired": s.expired}
            | ({"purpose": s.slot.purpose, "version": s.slot.version} if s.slot else {})
            for s in view.slots
        ],
        "pods": _pods(coordinator, view, problems),
        "problems": sorted(set(problems)),
    }


def pin(coordinator: FleetCoordinator, version: int, *, incomplete: str | None) -> Release:
    """A pinned release of ``version`` (validated first): refused if it is not complete in the bucket
    (``incomplete`` says why) or is rejected."""
    if incomplete:
        raise FleetRefusedError(f"cannot pin {version}: {incomplete}")

    def act(view: FleetView) -> bool:
        _not_rejected(coordinator, view, version)
        return coordinator.start_release(version, reason="operator pin", pinned=True)

    return _retry(coordinator, act)


def unpin(coordinator: FleetCoordinator) -> Release:
    """Pods may start releases of their own again."""

    def act(view: FleetView) -> bool:
        release = _release(view)
        if not release.pinned:
            raise FleetRefusedError(f"release {release.revision} (version {release.target}) is not pinned")
        return coordinator.set_pinned(False)

    return _retry(coordinator, act)


def rollback(coordinator: FleetCoordinator) -> Release:
    """Reject the release's target and roll every pod back to its previous version (known good: no
    validation, no canary)."""

    def act(view: FleetView) -> bool:
        release = _release(view)
        if release.previous is None:
            raise FleetRefusedError(f"release {release.revision} has no previous version to roll back to")
        coordinator.write_verdict(_verdict(coordinator, release, "operator rollback"))
        return coordinator.start_release(
            release.previous, reason="operator rollback", phase=Phase.ROLLING, previous=release.previous
        )

    return _retry(coordinator, act)


def abort(coordinator: FleetCoordinator) -> Release:
    """Stop a release under way: its target is rejected, canaries roll back, nobody else moves."""

    def act(view: FleetView) -> bool:
        release = _release(view)
        if release.phase.settled:
            raise FleetRefusedError(
                f"release {release.revision} is {release.phase}: nothing to abort; use fleet rollback"
            )
        return coordinator.abort("operator abort", stage=OPERATOR)

    return _retry(coordinator, act)


def clear(coordinator: FleetCoordinator, version: int) -> None:
    """Lift the fleet's rejection of ``version`` so a release may try it again."""
    record = coordinator.store.read(verdict_name(version))
    if record is None:
        raise FleetRefusedError(f"version {version} is not rejected in {coordinator.store.uri}")
    coordinator.store.delete(record.name, expect=record.token)


def _retry(coordinator: FleetCoordinator, act: Callable[[FleetView], bool]) -> Release:
    for _ in range(_ATTEMPTS):
        if act(coordinator.observe()):
            return _release(coordinator.observe())
    raise FleetRefusedError("the fleet's records kept changing while this ran; run the command again")


def _release(view: FleetView) -> Release:
    if view.release is None:
        raise FleetRefusedError(view.release_error or "no release yet: the fleet has not rolled anything")
    return view.release


def _not_rejected(coordinator: FleetCoordinator, view: FleetView, version: int) -> None:
    if version in view.rejected:
        record = coordinator.store.read(verdict_name(version))
        reason = _verdict_reason(record.data if record else b"", verdict_name(version))
        raise FleetRefusedError(
            f"cannot pin {version}: rejected ({reason}); `tfs-agent fleet clear MODEL {version}` first"
        )


def _verdict(coordinator: FleetCoordinator, release: Release, reason: str) -> Verdict:
    return Verdict(release.target, OPERATOR, reason, OPERATOR, coordinator.clock.time(), release.revision)


def _verdict_reason(data: bytes, origin: str) -> str:
    try:
        verdict = decode(Verdict, data, origin=origin)
    except FleetRecordError as err:
        return str(err)
    return f"{verdict.stage}: {verdict.reason}"


def _release_doc(release: Release | None) -> dict[str, Any] | None:
    return None if release is None else asdict(release) | {"phase": release.phase.value}


def _verdicts(coordinator: FleetCoordinator, problems: list[str]) -> dict[str, str]:
    out = {}
    for info in coordinator.store.list(VERDICTS_PREFIX):
        version = index_from_name(info.name, VERDICTS_PREFIX)
        record = coordinator.store.read(info.name)
        if version is not None and record is not None:
            out[str(version)] = reason = _verdict_reason(record.data, info.name)
            if reason.startswith(info.name):
                problems.append(reason)
    return out


def _pods(coordinator: FleetCoordinator, view: FleetView, problems: list[str]) -> list[dict[str, Any]]:
    rows = []
    for pod, age in sorted(view.ledger_ages.items()):
        record = coordinator.store.read(f"{LEDGER_PREFIX}{pod}.json")
        row: dict[str, Any] = {"pod": pod, "heartbeat_age_s": round(age, 1), "live": pod in view.live}
        try:
            entry = decode(LedgerEntry, record.data, origin=record.name) if record else None
        except FleetRecordError as err:
            problems.append(str(err))
            entry = None
        if entry is not None:
            row |= {k: v for k, v in asdict(entry).items() if k not in ("pod", "when")}
        rows.append(row)
    return rows
