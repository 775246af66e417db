"""Keep a held slot renewed while a long step runs (a load may take ``load_timeout``, far beyond slot_ttl).

    with SlotKeeper(coordinator) as keeper:
        swap()                      # the pipeline's step, under the slot
        if keeper.lost.is_set():    # taken over after it expired: undo the swap, observe again
            ...

A daemon thread calls ``renew_slot()`` every third of ``slot_ttl``; a renewal refused by a 429 is simply the
next one's job (two more fit in the ttl), a lost one sets ``lost`` and stops.
"""

from __future__ import annotations

import threading
from types import TracebackType

from agent.fleet.coordinator import FleetCoordinator


class SlotKeeper:
    """Renews the coordinator's slot in the background until the block ends or the slot is lost."""

    def __init__(self, coordinator: FleetCoordinator) -> None:
        self._coordinator = coordinator
        self._interval = coordinator.params.slot_ttl / 3
        self._stop = threading.Event()
        self.lost = threading.Event()
        self.renewals = 0
        self._thread = threading.Thread(target=self._run, name="fleet-slot-keeper", daemon=True)

    def __enter__(self) -> SlotKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            rate_limited = self._coordinator.rate_limited
            if self._coordinator.renew_slot():
                self.renewals += 1
            elif self._coordinator.rate_limited == rate_limited:
                self.lost.set()
                return
