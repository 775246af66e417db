"""The performance policy (docs/policies.md) end to end on live evidence: a real Prometheus scrapes a small
exporter the test controls (the model's online accuracy), the agent queries it; 0.85 against a floor of
0.80 holds v2, Prometheus down holds it with the reason shown, and 0.78 promotes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from testkit.poll import poll_until
from testkit.ports import free_port
from testkit.prometheus import PrometheusProcess
from testkit.stack import MODEL, Stack

pytestmark = pytest.mark.slow

QUERY = f'model_online_accuracy{{model="{MODEL}"}}'


class Exporter:
    """``model_online_accuracy`` on a loopback port, as the serving team's online evaluation would export."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accuracy = Gauge("model_online_accuracy", "Online accuracy.", ["model"], registry=self.registry)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    made = Exporter()
    yield made
    made.close()


def held_reason(stack: Stack) -> str:
    plan = stack.model().get("last_plan") or {}
    return str(plan.get("reason", "")) if plan.get("action") == "wait" else ""


def test_live_metric_crossing_the_floor_promotes(tmp_path: Path, exporter: Exporter) -> None:
    """0.85 ≥ 0.80 holds v2 with the numbers and the query; Prometheus down holds it and says so (in
    /status and tfs_agent_evidence_ok); back up with 0.78, v2 is promoted."""
    exporter.accuracy.labels(MODEL).set(0.85)
    prometheus = PrometheusProcess(tmp_path, {"online-eval": [f"127.0.0.1:{exporter.port}"]}).start()
    stack = Stack(
        tmp_path,
        policy={"replace_below": {"query": QUERY, "below": 0.8, "name": "online accuracy"}},
    )
    stack.config["monitoring"] = {"prometheus_url": prometheus.url, "query_timeout": "2s"}
    try:
        poll_until(
            lambda: prometheus.value(QUERY) == 0.85,
            timeout=30,
            interval=0.1,
            what="Prometheus to scrape the exporter",
        )
        stack.start()
        stack.publish(1)
        stack.wait_serving(1, timeout=120)
        stack.publish(2)
        reason = poll_until(
            lambda: held_reason(stack), timeout=60, interval=0.1, what="v2 held by the live metric"
        )
        assert reason == f"serving version still performs: online accuracy 0.85 ≥ 0.8 (query {QUERY})"

        prometheus.stop()
        reason = poll_until(
            lambda: "unreachable" in held_reason(stack) and held_reason(stack),
            timeout=60,
            interval=0.1,
            what="the outage shown",
        )
        assert f"127.0.0.1:{prometheus.port} is unreachable" in reason
        problems = stack.model()["evidence"]["problems"]
        assert "unreachable" in problems["prometheus"]
        code, body = stack.agent.get("/metrics")  # type: ignore[union-attr]
        assert code == 200
        assert b'tfs_agent_evidence_ok{model="m",source="prometheus"} 0.0' in body
        assert stack.model()["serving"] == 1

        exporter.accuracy.labels(MODEL).set(0.78)
        prometheus.start()
        stack.wait_serving(2, timeout=90)
        assert stack.model()["evidence"]["problems"] == {}
        log = stack.agent.log()  # type: ignore[union-attr]
        assert "online accuracy 0.78 < 0.8" in log
    finally:
        stack.close()
        prometheus.stop()
