"""Fleet records: their JSON round-trips, and every malformed record is an error naming the object."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.adapters.sources.base import CREATE_ONLY
from agent.adapters.sources.local import LocalSource
from agent.adapters.sources.local_records import LocalRecordStore
from agent.core.errors import FleetRecordError
from agent.core.fleet_records import (
    LedgerEntry,
    Phase,
    Purpose,
    Release,
    Slot,
    Verdict,
    capacity,
    decode,
    encode,
    index_from_name,
)
from agent.core.manifest import version_from_name
from agent.fleet import fleet_uri

RELEASE = Release(3, 7, 6, Phase.CANARY, "validated", "pod-a", 1.5, ("pod-a",), (), False)


@pytest.mark.parametrize(
    "record",
    [
        RELEASE,
        Verdict(7, "canary", "error ratio 0.2", "pod-b", 2.0, 3),
        Slot("pod-a", 3, Purpose.ROLL, 7, 3.0),
        Slot(None, 3, None, None, 4.0),
        LedgerEntry("pod-a", None, 0, "idle", "load timed out", 5.0),
        LedgerEntry("pod-a", 3, 1, "draining", None, 5.0, ready=False),
    ],
)
def test_records_round_trip(record: Release | Verdict | Slot | LedgerEntry) -> None:
    """Each record decodes to exactly what was encoded."""
    assert decode(type(record), encode(record), origin="x") == record


def test_a_ledger_entry_of_an_older_agent_reads_without_ready() -> None:
    """Entries written before the ``ready`` field existed still parse (ready None) and count as ready by
    serving and phase; ready must be a boolean when present."""
    old = (
        b'{"format":1,"kind":"ledger","last_error":null,"phase":"idle","pod":"b",'
        b'"revision":2,"serving":3,"when":1.0}'
    )
    entry = decode(LedgerEntry, old, origin="ledger/b.json")
    assert entry.ready is None
    assert entry.counts_ready()
    assert not LedgerEntry("b", None, 2, "idle", None, 1.0).counts_ready()
    assert not LedgerEntry("b", 3, 2, "draining", None, 1.0).counts_ready()
    assert not LedgerEntry("b", 3, 2, "idle", None, 1.0, ready=False).counts_ready()
    with pytest.raises(FleetRecordError, match="field 'ready' has a bad value"):
        decode(LedgerEntry, old.replace(b'"when"', b'"ready":"yes","when"'), origin="ledger/b.json")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (encode(RELEASE)[:20], "not valid UTF-8 JSON"),
        (b"[1, 2]", "top level must be a JSON object"),
        (b'{"kind": "release"}', "no integer 'format'"),
        (encode(RELEASE).replace(b'"format":1', b'"format":2'), "newer tfs-agent"),
        (encode(RELEASE).replace(b'"kind":"release"', b'"kind":"slot"'), "expected a format-1 release"),
        (encode(RELEASE).replace(b'"target":7', b'"target":"7"'), "field 'target' has a bad value"),
        (encode(RELEASE).replace(b'"phase":"canary"', b'"phase":"baking"'), "baking"),
        (encode(RELEASE).replace(b'"pinned"', b'"colour":1,"pinned"'), "unknown field(s) colour"),
        (encode(RELEASE).replace(b',"revision":3', b""), "revision"),
    ],
)
def test_a_malformed_release_names_the_object_and_the_problem(data: bytes, expected: str) -> None:
    """Truncated, hand-edited or newer-format records are FleetRecordError naming the object."""
    with pytest.raises(FleetRecordError) as caught:
        decode(Release, data, origin="gs://b/m/_fleet/prod/release.json")
    assert "gs://b/m/_fleet/prod/release.json" in str(caught.value)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("max_unavailable", "live", "expected"),
    [(1, 500, 1), (3, 2, 3), ("10%", 500, 50), ("10%", 19, 1), ("10%", 5, 1), ("25%", 10, 2), ("100%", 4, 4)],
)
def test_capacity_is_a_count_or_a_percentage_of_live_pods_never_zero(
    max_unavailable: int | str, live: int, expected: int
) -> None:
    """max_unavailable "N%" rounds down over the live pods, and at least one slot always exists."""
    assert capacity(max_unavailable, live) == expected


def test_slot_and_verdict_names_carry_their_index() -> None:
    """slots/3.json is slot 3; a non-canonical or foreign name is no index."""
    assert index_from_name("slots/3.json", "slots/") == 3
    assert index_from_name("verdicts/12.json", "verdicts/") == 12
    assert index_from_name("slots/03.json", "slots/") is None
    assert index_from_name("slots/x.json", "slots/") is None


def test_discovery_ignores_the_fleet_folder(tmp_path: Path) -> None:
    """Records under <source>/_fleet/ are never taken for a version by discovery."""
    (tmp_path / "m" / "4").mkdir(parents=True)
    store = LocalRecordStore.from_uri(fleet_uri(f"file://{tmp_path}/m", "prod"))
    store.write("release.json", encode(RELEASE), expect=CREATE_ONLY)
    assert (tmp_path / "m" / "_fleet" / "prod" / "release.json").is_file()
    assert version_from_name("_fleet") is None
    assert LocalSource(tmp_path / "m").list_versions() == frozenset({4})
