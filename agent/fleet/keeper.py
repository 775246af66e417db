"""Keep a held slot renewed while a long step runs (a load may take ``load_timeout``, far beyond slot_ttl).

    with SlotKeeper(coordinator) as keeper:
        swap()                      # the pipeline's step, under the slot
        if keeper.lost.is_set():    # taken over after it expired: undo the swap, observe again
            ...

A daemon thread calls ``renew_slot()`` every third of ``slot_ttl``; a renewal refused by a 429, or failing
because the bucket did not answer, is simply the next one's job (two more fit in the ttl), a lost one sets
``lost`` and stops. (An error escaping the thread would end the renewals of a pod that is still swapping: its
slot would expire under it and a second pod would load at the same time.)
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from agent.core.errors import AgentError
from agent.fleet.coordinator import FleetCoordinator
from agent.infra.logs import event

log = logging.getLogger(__name__)


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
            try:
                renewed = self._coordinator.renew_slot()
            except AgentError as err:  # the bucket unreachable: the slot is not lost, only not renewed yet
                event(log, "fleet: slot renewal failed", level=logging.WARNING, error=err.reason)
                continue
            if renewed:
                self.renewals += 1
            elif self._coordinator.rate_limited == rate_limited:
                self.lost.set()
                return
