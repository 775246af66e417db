"""Out of traffic while loading: /readyz 503 with the reason, wait for TF Serving to go quiet, act, return.

A readiness flip moves no request by itself: the load balancer notices at its next health check, and
requests already sent still arrive. So after the hold the pod watches TF Serving's own request counter
(``requests``: e.g. ``:tensorflow:serving:request_count`` from its Prometheus endpoint) and goes on once it
stayed unchanged for ``QUIET_SECONDS``, or after ``wait`` at the latest; without a counter it waits ``wait``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agent.core.errors import AgentError
from agent.infra.clock import Clock
from agent.infra.logs import event
from agent.pipeline.readiness import Readiness

log = logging.getLogger("tfs_agent")

#: Seconds without a new request that count as drained: several inter-arrival times at tens of requests per
#: second, short beside a load.
QUIET_SECONDS = 0.5
_STEP = 0.1

RequestCount = Callable[[], float]
"""Requests TF Serving has answered so far (any monotonic counter); AgentError when it cannot tell."""


class Drain:
    """One model's way out of traffic and back."""

    def __init__(
        self,
        readiness: Readiness,
        *,
        clock: Clock,
        wait: float,
        requests: RequestCount | None = None,
    ) -> None:
        self.readiness, self.clock, self.wait, self.requests = readiness, clock, wait, requests

    @contextmanager
    def out_of_traffic(self, reason: str) -> Iterator[float]:
        """Hold readiness with ``reason`` for the block; yields the seconds waited for quiet."""
        self.readiness.hold(reason)
        event(log, "draining", model=self.readiness.model, reason=reason)
        try:
            waited = self._wait_quiet()
            event(log, "drained", model=self.readiness.model, waited_s=round(waited, 3))
            yield waited
        finally:
            self.readiness.release()
            event(log, "back in traffic", model=self.readiness.model)

    def _wait_quiet(self) -> float:
        start = self.clock.monotonic()
        deadline = start + self.wait
        last, since = self._count(), start
        while self.clock.monotonic() < deadline:
            self.clock.sleep(_STEP)
            now, count = self.clock.monotonic(), self._count()
            if count is None or count != last:
                last, since = count, now
            elif now - since >= QUIET_SECONDS:
                break
        return self.clock.monotonic() - start

    def _count(self) -> float | None:
        if self.requests is None:
            return None
        try:
            return self.requests()
        except AgentError:  # cannot tell: wait the whole ``wait``
            return None
