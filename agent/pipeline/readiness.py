"""Whether the pod should get traffic for one model, asked per probe, never waiting for a pass.

"Ready" means: the state file records a validated version and TF Serving lists it AVAILABLE (GetModelStatus),
and nothing holds the model out of traffic on purpose (a drain). It is computed when a probe asks, outside
the pass lock, so a restarted agent is ready as soon as TF Serving serves its recorded version, and a pass
that runs for minutes (download, validation, bake) never changes the answer by itself.

A GetModelStatus that misses its deadline (the server busy loading) does not pull the pod out: the last
answer TF Serving gave stands for ``grace`` seconds. A server that does not listen is not ready at once
(its clients' requests fail as well). Readiness used to be computed once at the end
of each pass, so one failed status call made /readyz 503 for a whole poll interval although the version
kept serving: the flap seen "shortly after the first version served, with no swap going on".
"""

from __future__ import annotations

import threading

from agent.adapters.tfserving.base import ServingControl
from agent.core.domain import VersionState
from agent.core.errors import AgentError, ServingDeadlineError
from agent.infra.clock import Clock
from agent.infra.state import StateStore

#: Seconds the last answer from TF Serving stands while GetModelStatus fails: longer than one slow RPC under
#: load, shorter than a kubelet's default failureThreshold × periodSeconds (3 × 10 s), so a real outage
#: still takes the pod out about when the probe would.
DEFAULT_GRACE = 10.0


class Readiness:
    """One model's readiness for traffic; thread-safe, never takes the pass lock."""

    def __init__(
        self,
        model: str,
        *,
        serving: ServingControl,
        state: StateStore,
        clock: Clock,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self.model, self.serving, self.state, self.clock, self.grace = model, serving, state, clock, grace
        self._lock = threading.Lock()
        self._held: str | None = None
        # TF Serving's last answer: (monotonic time, version, whether it was AVAILABLE)
        self._last: tuple[float, int, bool] | None = None

    def hold(self, reason: str) -> None:
        """Report not-ready with ``reason`` until ``release`` (the pod leaves traffic on purpose)."""
        with self._lock:
            self._held = reason

    def release(self) -> None:
        with self._lock:
            self._held = None

    @property
    def held(self) -> str | None:
        with self._lock:
            return self._held

    def check(self) -> tuple[bool, str]:
        """Ready or not, and why (``"ok"`` when ready)."""
        held = self.held
        if held is not None:
            return False, held
        version = self.state.get(self.model).serving
        if version is None:
            return False, "no validated version serves yet"
        try:
            live = self._available(version)
        except ServingDeadlineError as err:
            return self._unanswered(version, err.reason)
        except AgentError as err:  # not listening: TF Serving is down or restarting, requests fail too
            return False, f"TF Serving: {err.reason}"
        return (True, "ok") if live else (False, f"version {version} is not AVAILABLE in TF Serving")

    def _available(self, version: int) -> bool:
        states = {s.version: s.state for s in self.serving.status(self.model)}
        live = states.get(version) is VersionState.AVAILABLE
        with self._lock:
            self._last = (self.clock.monotonic(), version, live)
        return live

    def _unanswered(self, version: int, reason: str) -> tuple[bool, str]:
        """TF Serving did not answer: its last answer about this version stands for ``grace`` seconds."""
        with self._lock:
            last = self._last
        if last is not None and last[1] == version and self.clock.monotonic() - last[0] < self.grace:
            live = last[2]
            return (True, "ok") if live else (False, f"version {version} is not AVAILABLE in TF Serving")
        return False, f"TF Serving: {reason}"
