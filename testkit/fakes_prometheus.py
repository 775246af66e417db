"""``MetricQuery`` in memory for unit tests: a value per query (absent: no data) or a scripted error.

It keeps the real client's contract (tests/integration/test_prometheus_client.py): a number, None for no
data, or ``MetricQueryError`` — so a test passing here exercises what Prometheus itself answers.
"""

from __future__ import annotations

from agent.core.errors import MetricQueryError


class FakeMetricQuery:
    """Answers ``values[promql]``; raises ``MetricQueryError(error)`` while ``error`` is set."""

    def __init__(self, values: dict[str, float] | None = None) -> None:
        self.values = dict(values or {})
        self.error: str | None = None
        self.calls: list[str] = []

    def query(self, promql: str) -> float | None:
        self.calls.append(promql)
        if self.error is not None:
            raise MetricQueryError(self.error)
        return self.values.get(promql)
