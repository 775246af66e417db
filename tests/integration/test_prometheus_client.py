"""PrometheusClient against a real Prometheus (Debian's): numbers, no data, refused and ambiguous queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.adapters.prometheus import PrometheusClient
from agent.core.errors import MetricQueryError
from testkit.prometheus import PrometheusProcess


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusClient]:
    prometheus = PrometheusProcess(Path(tmp_path_factory.mktemp("prometheus")), {}).start()
    yield PrometheusClient(prometheus.url, timeout=5)
    prometheus.stop()


def test_a_number(client: PrometheusClient) -> None:
    """A one-series vector and a scalar each answer their number."""
    assert client.query("vector(0.83)") == pytest.approx(0.83)
    assert client.query("scalar(vector(0.5))") == pytest.approx(0.5)


def test_no_data_is_none(client: PrometheusClient) -> None:
    """A selector matching nothing (the metric is not exported yet) is no data, not zero."""
    assert client.query('model_online_accuracy{model="absent"}') is None


def test_bad_query_is_refused_with_prometheus_words(client: PrometheusClient) -> None:
    """A PromQL syntax error comes back as Prometheus's own error (HTTP 400), named as refused."""
    with pytest.raises(MetricQueryError, match=r"refused the query 'avg_over_time\(x\[': bad_data"):
        client.query("avg_over_time(x[")


def test_several_series_must_be_aggregated(client: PrometheusClient) -> None:
    """Two series cannot be compared with one floor: the error says to aggregate."""
    query = 'vector(1) or label_replace(vector(2), "k", "v", "", "")'
    with pytest.raises(MetricQueryError, match=r"returns 2 series.*aggregate"):
        client.query(query)
