"""The fleet protocol against the in-memory store that enforces GCS's preconditions: races, expiry, skew."""

from __future__ import annotations

import threading

import pytest

from agent.adapters.sources.base import CREATE_ONLY
from agent.adapters.sources.memory import MemoryRecordStore
from agent.core.fleet_records import RELEASE_NAME, LedgerEntry, Phase, Purpose, Release, encode, verdict_name
from agent.fleet import Action, FleetCoordinator, FleetParams, PodState, decide
from agent.fleet.simulation import SkewedClock
from agent.infra.clock import ManualClock


def _pod(
    store: MemoryRecordStore, clock: ManualClock, name: str, offset: float = 0.0, **params: object
) -> FleetCoordinator:
    """A pod whose own clock is ``offset`` seconds off the store's."""
    base = FleetParams(fleet="prod", pod=name, slot_ttl=30.0, heartbeat=10.0, dead_after=40.0)
    merged = FleetParams(**{**base.__dict__, **params})  # type: ignore[arg-type]
    return FleetCoordinator(store, merged, SkewedClock(clock, offset))


def _beat(pod: FleetCoordinator, serving: int | None = 1) -> None:
    assert pod.heartbeat(LedgerEntry(pod.params.pod, serving, 0, "idle", None, pod.clock.time()))


def _rolling(store: MemoryRecordStore, target: int = 2, previous: int = 1) -> None:
    release = Release(1, target, previous, Phase.ROLLING, "test", "op", 0.0)
    store.write(RELEASE_NAME, encode(release), expect=CREATE_ONLY)


@pytest.fixture
def clock() -> ManualClock:
    """The store's clock."""
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> MemoryRecordStore:
    """A fresh GCS-like store (412 on stale generations; no rate limit unless a test sets one)."""
    return MemoryRecordStore(clock)


def test_two_pods_racing_for_one_slot_exactly_one_wins(store: MemoryRecordStore, clock: ManualClock) -> None:
    """Both see slot 0 free and take it from the same view; one write wins, the loser re-decides to wait."""
    _rolling(store)
    a, b = _pod(store, clock, "a"), _pod(store, clock, "b")
    for pod in (a, b):
        _beat(pod)
    steps = [decide(p.observe(), PodState(serving=1)) for p in (a, b)]
    assert [s.action for s in steps] == [Action.TAKE_SLOT, Action.TAKE_SLOT]
    assert [s.slot for s in steps] == [0, 0]
    results = [p.apply(s, PodState(serving=1)) for p, s in zip((a, b), steps, strict=True)]
    assert sorted(results) == [False, True]
    loser = (a, b)[results.index(False)]
    assert loser.lost_races == 1
    assert decide(loser.observe(), PodState(serving=1)).action is Action.WAIT


def test_eight_threads_racing_for_one_slot_exactly_one_wins(
    store: MemoryRecordStore, clock: ManualClock
) -> None:
    """Concurrent take_slot calls on one observed free slot: the store lets exactly one through."""
    _rolling(store)
    pods = [_pod(store, clock, f"p{i}") for i in range(8)]
    for pod in pods:
        _beat(pod)
        pod.observe()
    barrier, wins = threading.Barrier(8), []
    lock = threading.Lock()

    def race(pod: FleetCoordinator) -> None:
        barrier.wait()
        won = pod.take_slot(0, Purpose.ROLL, 2)
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=race, args=(p,)) for p in pods]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_an_expired_slot_is_taken_over_and_its_old_holder_learns_it_lost(
    store: MemoryRecordStore, clock: ManualClock
) -> None:
    """Unrenewed past slot_ttl (store time), a slot goes to the next pod; the old holder's renew fails."""
    _rolling(store)
    a, b = _pod(store, clock, "a"), _pod(store, clock, "b")
    _beat(a)
    a.observe()
    assert a.take_slot(0, Purpose.ROLL, 2)
    clock.advance(20)
    _beat(b)
    assert decide(b.observe(), PodState(serving=1)).action is Action.WAIT
    clock.advance(12)  # 32 s since the last write to the slot: past ttl 30 s plus the 1 s margin
    _beat(b)
    step = decide(b.observe(), PodState(serving=1))
    assert (step.action, step.slot) == (Action.TAKE_SLOT, 0)
    assert b.apply(step, PodState(serving=1))
    assert b.view.mine is None  # the view is from before the take; observe again to see it
    assert b.observe().mine is not None
    assert not a.renew_slot()


def test_a_renewed_slot_is_never_expired(store: MemoryRecordStore, clock: ManualClock) -> None:
    """Renewing every third of the ttl keeps the slot held however long the load takes."""
    _rolling(store)
    a, b = _pod(store, clock, "a"), _pod(store, clock, "b")
    _beat(a)
    a.observe()
    assert a.take_slot(0, Purpose.ROLL, 2)
    for _ in range(10):
        clock.advance(10)
        assert a.renew_slot()
        _beat(b)
        assert decide(b.observe(), PodState(serving=1)).action is Action.WAIT


def test_skewed_pod_clocks_do_not_move_slot_expiry(store: MemoryRecordStore, clock: ManualClock) -> None:
    """A holder an hour behind and an observer an hour ahead: expiry follows the store's clock only."""
    _rolling(store)
    holder = _pod(store, clock, "slow", offset=-3600)
    observer = _pod(store, clock, "fast", offset=+3600)
    _beat(holder)
    holder.observe()
    assert holder.take_slot(0, Purpose.ROLL, 2)
    _beat(observer)
    view = observer.observe()
    assert view.slot(0).holder == "slow"
    assert not view.slot(0).expired
    clock.advance(31.5)
    _beat(observer)
    assert observer.observe().slot(0).expired


def test_verdicts_are_create_only_the_first_rejection_stands(
    store: MemoryRecordStore, clock: ManualClock
) -> None:
    """Two pods aborting one version: one verdict is written, the second write is refused, both see it."""
    _rolling(store)
    a, b = _pod(store, clock, "a"), _pod(store, clock, "b")
    for pod in (a, b):
        _beat(pod)
        pod.observe()
    assert a.abort("canary a: errors", stage="canary")
    assert not b.abort("canary b: errors", stage="canary")  # its release CAS lost; its verdict was refused
    record = store.read(verdict_name(2))
    assert record is not None
    assert b"canary a: errors" in record.data
    assert 2 in b.observe().rejected
    assert b.view.release is not None
    assert b.view.release.phase is Phase.ABORTED


def test_a_lost_release_cas_is_re_read_and_re_decided(store: MemoryRecordStore, clock: ManualClock) -> None:
    """Both pods start a release for v2 from one view; the loser re-reads and joins it instead of a second."""
    a, b = _pod(store, clock, "a"), _pod(store, clock, "b")
    pod = PodState(serving=1, candidate=2)
    for p in (a, b):
        _beat(p)
    steps = [decide(p.observe(), pod) for p in (a, b)]
    assert [s.action for s in steps] == [Action.START_RELEASE] * 2
    assert a.apply(steps[0], pod)
    assert not b.apply(steps[1], pod)
    again = decide(b.observe(), pod)
    assert again.action is not Action.START_RELEASE
    assert b.view.release is not None
    assert (b.view.release.revision, b.view.release.target) == (1, 2)


def test_an_unparseable_release_is_named_kept_and_never_overwritten(
    store: MemoryRecordStore, clock: ManualClock
) -> None:
    """A truncated release.json stops the fleet (pods keep serving) and no pod step rewrites it."""
    store.write(RELEASE_NAME, b'{"format": 1, "kind": "rel', expect=CREATE_ONLY)
    a = _pod(store, clock, "a")
    _beat(a)
    for _ in range(3):
        step = decide(a.observe(), PodState(serving=1, candidate=2))
        assert step.action is Action.WAIT
        assert "release.json" in step.reason
        assert "not valid UTF-8 JSON" in step.reason
    record = store.read(RELEASE_NAME)
    assert record is not None
    assert record.data == b'{"format": 1, "kind": "rel'
    assert a.view.problems


def test_an_unparseable_slot_is_held_until_it_expires(store: MemoryRecordStore, clock: ManualClock) -> None:
    """A hand-edited slot is nobody's while fresh, and is taken over by CAS on its token once stale."""
    _rolling(store)
    store.write("slots/0.json", b"garbage", expect=CREATE_ONLY)
    a = _pod(store, clock, "a")
    _beat(a)
    view = a.observe()
    assert not view.slot(0).free
    assert any("slots/0.json" in p for p in view.problems)
    clock.advance(32)
    _beat(a)
    step = decide(a.observe(), PodState(serving=1))
    assert step.action is Action.TAKE_SLOT
    assert a.apply(step, PodState(serving=1))


def test_max_unavailable_percentage_counts_live_pods(store: MemoryRecordStore, clock: ManualClock) -> None:
    """10 % of 20 live pods is two slots: two pods take one each, the third waits."""
    _rolling(store)
    pods = [_pod(store, clock, f"p{i:02d}", max_unavailable="10%") for i in range(20)]
    for pod in pods:
        _beat(pod)
    taken = []
    for pod in pods[:3]:
        step = decide(pod.observe(), PodState(serving=1))
        taken.append(step.action is Action.TAKE_SLOT and pod.apply(step, PodState(serving=1)))
    assert taken == [True, True, False]
    assert pods[0].observe().capacity == 2


def test_stale_ledger_entries_are_not_live(store: MemoryRecordStore, clock: ManualClock) -> None:
    """Pods silent for longer than dead_after drop out of the live count (and so out of 10 % and done)."""
    _rolling(store)
    silent = [_pod(store, clock, f"gone{i:02d}", max_unavailable="10%") for i in range(10)]
    for pod in silent:
        _beat(pod)
    clock.advance(41)
    awake = [_pod(store, clock, f"live{i:02d}", max_unavailable="10%") for i in range(10)]
    for pod in awake:
        _beat(pod)
    view = awake[0].observe()
    assert view.live == frozenset(p.params.pod for p in awake)
    assert view.capacity == 1
    assert view.ledger_ages["gone00"] == pytest.approx(41)


def test_the_last_pod_to_arrive_finishes_the_release_without_dead_pods(
    store: MemoryRecordStore, clock: ManualClock
) -> None:
    """A rolling release is done once every *live* pod arrived; a dead pod does not hold it open."""
    _rolling(store)
    dead, a = _pod(store, clock, "dead"), _pod(store, clock, "a")
    _beat(dead)
    clock.advance(50)
    _beat(a, serving=2)
    assert decide(a.observe(), PodState(serving=2)).action is Action.ARRIVE
    assert a.arrive()
    step = decide(a.observe(), PodState(serving=2))
    assert (step.action, step.phase) == (Action.ADVANCE, Phase.DONE)
    assert a.apply(step, PodState(serving=2))


def test_forgotten_pods_are_pruned_when_a_release_is_done(
    store: MemoryRecordStore, clock: ManualClock
) -> None:
    """Ledger entries older than forget_after and arrivals of older revisions are removed."""
    _rolling(store)
    old = _pod(store, clock, "old", forget_after=100.0)
    _beat(old)
    store.write("arrived/0/old", b"", expect=CREATE_ONLY)
    clock.advance(200)
    a = _pod(store, clock, "a", forget_after=100.0)
    _beat(a, serving=2)
    a.observe()
    assert a.arrive()
    a.observe()
    assert a.advance(Phase.DONE, "all arrived")
    assert [i.name for i in store.list("ledger/")] == ["ledger/a.json"]
    assert [i.name for i in store.list("arrived/")] == ["arrived/1/a"]


def test_rate_limited_writes_return_false_and_are_counted(
    store: MemoryRecordStore, clock: ManualClock
) -> None:
    """A second mutation of one object within a second is a 429: refused, counted, nothing changed."""
    store.mutation_interval = 1.0
    a = _pod(store, clock, "a")
    _beat(a)
    assert not a.heartbeat(LedgerEntry("a", 2, 0, "idle", None, 0.0))
    assert a.rate_limited == 1
    clock.advance(1)
    assert a.heartbeat(LedgerEntry("a", 2, 0, "idle", None, 0.0))
