"""The bake's live-traffic gates for one model: a baseline before the swap, a judgement over the window.

An unreachable monitoring endpoint tells nothing about the version: the gates then do not judge (logged),
and the golden probe's bake stands.
"""

from __future__ import annotations

import logging

from agent.adapters.tfserving.monitoring import LiveGates, Sample, judge, scrape
from agent.core.errors import ServingUnavailableError
from agent.infra.config_policy import LiveGatesSettings
from agent.infra.logs import event

log = logging.getLogger(__name__)


class LiveWatch:
    def __init__(self, url: str, model: str, gates: LiveGatesSettings) -> None:
        self.url, self.model = url, model
        self.gates = LiveGates(gates.max_error_ratio, gates.max_p99_ratio, gates.min_requests)
        self.before: Sample | None = None

    def sample(self) -> Sample | None:
        try:
            return scrape(self.url, self.model)
        except ServingUnavailableError as err:
            event(log, "live gates: no sample", level=logging.WARNING, model=self.model, error=err.reason)
            return None

    def baseline(self) -> None:
        """Everything counted before the swap: the pod's own baseline."""
        self.before = self.sample()

    def judge(self, version: int, start: Sample) -> str | None:
        """The problem over the window since ``start``, or None (also when it cannot be judged)."""
        end = self.sample()
        if end is None:
            return None
        if self.before is None:  # a restart since the swap (or no sample then): nothing to compare p99 with
            event(
                log,
                "live gates: no baseline from before the swap; the p99 gate does not judge",
                level=logging.WARNING,
                model=self.model,
                version=version,
            )
        problem, seen = judge(self.before or Sample(), end.minus(start), self.gates)
        event(log, "live gates", model=self.model, version=version, ok=problem is None, seen=seen)
        return problem
