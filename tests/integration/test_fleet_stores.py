"""The fleet protocol on real stores (file://, fake-gcs-server): one slot, two pods, the store's own clock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.adapters.sources.base import CREATE_ONLY, RecordStore
from agent.adapters.sources.gcs_records import GcsRecordStore
from agent.adapters.sources.local_records import LocalRecordStore
from agent.core.fleet_records import RELEASE_NAME, LedgerEntry, Phase, Release, encode
from agent.fleet import Action, FleetCoordinator, FleetParams, PodState, decide, fleet_uri
from agent.infra.clock import SystemClock
from testkit.gcs import FakeGcsServer, new_bucket

ROLLING = PodState(serving=1)


@pytest.fixture(params=["file", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RecordStore:
    """A fleet folder holding a rolling release 1 → 2."""
    if request.param == "file":
        records: RecordStore = LocalRecordStore.from_uri(fleet_uri(f"file://{tmp_path}/m", "prod"))
    else:
        server: FakeGcsServer = request.getfixturevalue("gcs_emulator")
        client = server.client()
        records = GcsRecordStore(fleet_uri(f"gs://{new_bucket(client)}/m", "prod"), client=client)
    release = Release(1, 2, 1, Phase.ROLLING, "test", "op", 0.0)
    records.write(RELEASE_NAME, encode(release), expect=CREATE_ONLY)
    return records


def _pod(store: RecordStore, name: str, slot_ttl: float = 30.0) -> FleetCoordinator:
    params = FleetParams(fleet="prod", pod=name, max_unavailable=1, slot_ttl=slot_ttl)
    pod = FleetCoordinator(store, params, SystemClock())
    assert pod.heartbeat(LedgerEntry(name, 1, 1, "idle", None, time.time()))
    return pod


def test_two_pods_one_slot_the_loser_waits_then_takes_it_once_released(store: RecordStore) -> None:
    """Both take slot 0 from one view: one wins; once the winner frees it by overwrite, the other gets it."""
    a, b = _pod(store, "a"), _pod(store, "b")
    steps = [decide(p.observe(ROLLING), ROLLING) for p in (a, b)]
    assert [(s.action, s.slot) for s in steps] == [(Action.TAKE_SLOT, 0)] * 2
    won = [p.apply(s, ROLLING) for p, s in zip((a, b), steps, strict=True)]
    assert sorted(won) == [False, True]
    winner, loser = (a, b) if won[0] else (b, a)
    assert decide(loser.observe(ROLLING), ROLLING).action is Action.WAIT
    winner.observe()
    assert winner.release_slot()
    step = decide(loser.observe(ROLLING), ROLLING)
    assert (step.action, step.slot) == (Action.TAKE_SLOT, 0)
    assert loser.apply(step, ROLLING)
    assert loser.observe().mine is not None


def test_an_unrenewed_slot_expires_by_the_stores_timestamps(store: RecordStore) -> None:
    """With a 1 s ttl, a slot nobody renews is free to take over once the store's clock says so."""
    a, b = _pod(store, "a", slot_ttl=1.0), _pod(store, "b", slot_ttl=1.0)
    step = decide(a.observe(ROLLING), ROLLING)
    assert a.apply(step, ROLLING)
    assert decide(b.observe(ROLLING), ROLLING).action is Action.WAIT
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert b.heartbeat(LedgerEntry("b", 1, 1, "idle", None, time.time()))
        step = decide(b.observe(ROLLING), ROLLING)
        if step.action is Action.TAKE_SLOT:
            break
        time.sleep(0.2)  # waiting for the store's clock to pass ttl + margin, bounded by the deadline
    assert step.action is Action.TAKE_SLOT
    assert b.apply(step, ROLLING)
    assert not a.renew_slot()
