"""The Prometheus port: API answers to one number or "no data", failures to MetricQueryError; the fake."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent.adapters.prometheus import MetricQuery, PrometheusClient, value_of
from agent.core.errors import MetricQueryError
from testkit.fakes_prometheus import FakeMetricQuery


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [1.0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (vector("0.83"), 0.83),
        (vector(), None),  # no series: no data
        (vector("NaN"), None),  # avg_over_time of nothing
        ({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "2"]}}, 2.0),
    ],
)
def test_one_number_or_no_data(body: dict[str, Any], value: float | None) -> None:
    """A scalar or a single-series vector is its number; an empty vector or NaN is no data."""
    assert value_of(body, "q") == value


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error"},
            "refused the query 'q': bad_data",
        ),
        (vector("1", "2"), "returns 2 series"),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "returns a matrix"),
        (vector("x"), "returned no number"),
    ],
)
def test_unusable_answers_name_the_fix(body: dict[str, Any], needle: str) -> None:
    """A refused, ambiguous or non-numeric answer is a MetricQueryError saying what to change."""
    with pytest.raises(MetricQueryError, match=None) as info:
        value_of(body, "q")
    assert needle in info.value.reason


def test_unreachable_prometheus_is_a_query_error() -> None:
    """Nothing listening is MetricQueryError naming the URL and the config key, never a crash."""
    client = PrometheusClient("http://127.0.0.1:9", timeout=2)
    with pytest.raises(MetricQueryError, match=r"127\.0\.0\.1:9 is unreachable.*monitoring\.prometheus_url"):
        client.query("up")


def test_fake_keeps_the_port_contract() -> None:
    """The fake is a MetricQuery: known queries answer, unknown ones are no data, a scripted error raises."""
    fake = FakeMetricQuery({"up": 1.0})
    assert isinstance(fake, MetricQuery)
    assert (fake.query("up"), fake.query("down")) == (1.0, None)
    fake.error = "Prometheus at http://p is unreachable"
    with pytest.raises(MetricQueryError, match="unreachable"):
        fake.query("up")
    assert fake.calls == ["up", "down", "up"]


class _NotPrometheus(BaseHTTPRequestHandler):
    """Answers every GET with an HTML page, as a wrong port (a dashboard, a proxy's login page) would."""

    def do_GET(self) -> None:
        body = b"<html>sign in</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_server_that_is_not_prometheus_is_named() -> None:
    """An answer that is not JSON says which URL sent it and asks whether that is Prometheus."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotPrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = PrometheusClient(f"http://127.0.0.1:{server.server_port}", timeout=5)
        with pytest.raises(MetricQueryError, match="did not answer with JSON; is that Prometheus's HTTP API"):
            client.query("up")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
