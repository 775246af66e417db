"""One narrow port to Prometheus: evaluate an instant PromQL query to one number, or to "no data".

``MetricQuery`` is what the performance policy's live evidence (``replace_below: {query: ...}``) needs, and
what live gates on the bake can reuse; ``PrometheusClient`` implements it over the HTTP API
(``GET /api/v1/query``). urllib rather than an HTTP library: one GET to one endpoint. Every failure becomes a
``MetricQueryError`` naming what to fix, here only.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlencode

from agent.core.errors import MetricQueryError
from agent.infra.jsondoc import json_object


@runtime_checkable
class MetricQuery(Protocol):
    """Read one live number."""

    def query(self, promql: str) -> float | None:
        """The query's value now; None when it returns no data. Raises MetricQueryError."""
        ...


class PrometheusClient:
    """``MetricQuery`` over Prometheus's HTTP API at ``base_url`` (e.g. ``http://prometheus:9090``)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str) -> float | None:
        url = f"{self.base_url}/api/v1/query?" + urlencode({"query": promql})
        return value_of(self._get(url), promql)

    def _get(self, url: str) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                return _decode(response.read(), url)
        except urllib.error.HTTPError as err:
            with err:
                body = err.read()
            # 400/422 carry Prometheus's own JSON error (a bad query); anything else is the server's state.
            if err.code in (400, 422):
                return _decode(body, url)
            raise MetricQueryError(f"Prometheus at {self.base_url} answered HTTP {err.code}") from err
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise MetricQueryError(
                f"Prometheus at {self.base_url} is unreachable ({reason}); check monitoring.prometheus_url"
            ) from err


def _decode(raw: bytes, url: str) -> dict[str, Any]:
    return json_object(raw, url, error=MetricQueryError, hint="is that Prometheus's HTTP API?")


def value_of(body: dict[str, Any], promql: str) -> float | None:
    """One number from an API answer: a scalar, or a vector of at most one series (none: no data)."""
    if body.get("status") != "success":
        raise MetricQueryError(
            f"Prometheus refused the query {promql!r}: {body.get('errorType', 'error')}: "
            f"{body.get('error', 'no reason given')}"
        )
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result, promql)
    if kind != "vector" or not isinstance(result, list):
        raise MetricQueryError(f"the query {promql!r} returns a {kind}; write one that returns one number")
    if len(result) > 1:
        series = ", ".join(json.dumps(r.get("metric", {}), sort_keys=True) for r in result[:3])
        raise MetricQueryError(
            f"the query {promql!r} returns {len(result)} series ({series}); aggregate them to one, "
            "e.g. avg(...) or a narrower label selector"
        )
    return _number(result[0].get("value"), promql) if result else None


def _number(sample: Any, promql: str) -> float | None:
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError) as err:
        raise MetricQueryError(f"the query {promql!r} returned no number: {sample!r}") from err
    return None if math.isnan(value) else value
