"""SlotKeeper renews a held slot from its own thread, and says so when the slot was taken over."""

from __future__ import annotations

import time

from agent.adapters.sources.base import Expect
from agent.adapters.sources.memory import MemoryRecordStore
from agent.core.errors import PreconditionFailed, TransientSourceError
from agent.core.fleet_records import LedgerEntry, Purpose, Slot, encode, slot_name
from agent.fleet import FleetCoordinator, FleetParams
from agent.fleet.keeper import SlotKeeper
from agent.infra.clock import SystemClock


def _holder(store: MemoryRecordStore) -> FleetCoordinator:
    pod = FleetCoordinator(store, FleetParams(fleet="prod", pod="a", slot_ttl=0.3), SystemClock())
    assert pod.heartbeat(LedgerEntry("a", 1, 0, "idle", None, 0.0))
    pod.observe()
    assert pod.take_slot(0, Purpose.ROLL, 2)
    return pod


def _until(condition: object, deadline: float = 30.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)  # polling a background thread's progress, bounded by the deadline
    return False


def test_the_keeper_renews_the_slot_while_the_step_runs() -> None:
    """Every third of slot_ttl the slot's token changes, and nothing is reported lost."""
    store = MemoryRecordStore(SystemClock())
    pod = _holder(store)
    first = store.read(slot_name(0))
    assert first is not None
    with SlotKeeper(pod) as keeper:
        assert _until(lambda: keeper.renewals >= 3)
    record = store.read(slot_name(0))
    assert record is not None
    assert record.token != first.token
    assert not keeper.lost.is_set()


def test_the_keeper_reports_a_slot_taken_over() -> None:
    """Once another pod owns the slot, the next renewal fails and ``lost`` is set."""
    store = MemoryRecordStore(SystemClock())
    pod = _holder(store)

    def take_over() -> bool:
        current = store.read(slot_name(0))
        assert current is not None
        try:
            store.write(slot_name(0), encode(Slot("b", 0, Purpose.ROLL, 2, 0.0)), expect=current.token)
        except PreconditionFailed:  # the keeper renewed in between: read again
            return False
        return True

    with SlotKeeper(pod) as keeper:
        assert _until(take_over)
        assert _until(keeper.lost.is_set)


class _Unreachable(MemoryRecordStore):
    """The bucket not answering the next ``failures`` writes (a connection refused, say)."""

    failures = 0

    def write(self, name: str, data: bytes, *, expect: Expect) -> str:
        if self.failures:
            self.failures -= 1
            raise TransientSourceError(f"writing {name}: ConnectionError: refused")
        return super().write(name, data, expect=expect)


def test_an_unreachable_bucket_does_not_end_the_renewals() -> None:
    """A renewal that fails because the bucket did not answer is retried at the next tick: the slot is
    renewed again afterwards and not reported lost."""
    store = _Unreachable(SystemClock())
    pod = _holder(store)
    with SlotKeeper(pod) as keeper:
        store.failures = 2
        assert _until(lambda: store.failures == 0 and keeper.renewals >= 2)
    assert not keeper.lost.is_set()
