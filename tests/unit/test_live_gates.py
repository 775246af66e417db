"""Live-traffic gates: TF Serving's exposition parsed per model, the bake window judged against a baseline."""

from __future__ import annotations

import pytest

from agent.adapters.tfserving.monitoring import LiveGates, judge, parse
from agent.core.errors import ConfigError
from agent.infra.config import settings_from_mapping

GATES = LiveGates(max_error_ratio=0.05, max_p99_ratio=3.0, min_requests=10)


def exposition(ok: int, bad: int, fast: int, slow: int, model: str = "m") -> str:
    """The stock exporter's text: names starting with ':', latency buckets in microseconds."""
    lat = ":tensorflow:serving:request_latency"
    labels = f'model_name="{model}",API="predict",entrypoint="GRPC"'
    return "\n".join(
        [
            "# TYPE :tensorflow:serving:request_count counter",
            f':tensorflow:serving:request_count{{model_name="{model}",status="OK"}} {ok}',
            f':tensorflow:serving:request_count{{model_name="{model}",status="INVALID_ARGUMENT"}} {bad}',
            ':tensorflow:serving:request_count{model_name="other",status="INTERNAL"} 99',
            f"# TYPE {lat} histogram",
            f'{lat}_bucket{{{labels},le="1000"}} {fast}',
            f'{lat}_bucket{{{labels},le="100000"}} {fast + slow}',
            f'{lat}_bucket{{{labels},le="+Inf"}} {fast + slow}',
            f"{lat}_sum{{{labels}}} 0",
            f"{lat}_count{{{labels}}} {fast + slow}",
            "",
        ]
    )


def test_parse_counts_one_models_requests_by_status() -> None:
    """Only the model's own series count; every status but OK is an error."""
    sample = parse(exposition(ok=90, bad=10, fast=100, slow=0), "m")
    assert (sample.ok, sample.errors) == (90, 10)
    assert sample.p99() == 1000


@pytest.mark.parametrize(
    ("after", "needle"),
    [
        # Errors inside the bake window (not before it) fail the gate, naming the ratio.
        (exposition(ok=150, bad=50, fast=200, slow=0), "error ratio 0.500"),
        # A window whose p99 is 100x the baseline's fails the latency gate.
        (exposition(ok=200, bad=0, fast=100, slow=100), "p99"),
    ],
    ids=["error-ratio", "p99-ratio"],
)
def test_a_bad_window_fails_the_bake_naming_the_gate(after: str, needle: str) -> None:
    """Errors or latency inside the bake window, against the baseline before it, fail the named gate."""
    before = parse(exposition(ok=100, bad=0, fast=100, slow=0), "m")
    window = parse(after, "m").minus(before)
    problem, _ = judge(before, window, GATES)
    assert problem is not None
    assert needle in problem


def test_too_few_requests_is_no_verdict() -> None:
    """Below min_requests the gates do not judge, even if every request failed."""
    before = parse(exposition(ok=100, bad=0, fast=100, slow=0), "m")
    after = parse(exposition(ok=100, bad=5, fast=105, slow=0), "m")
    problem, seen = judge(before, after.minus(before), GATES)
    assert problem is None
    assert "not judged" in seen


def test_live_gates_need_a_monitoring_url() -> None:
    """live_gates without serving.monitoring_url is a config error naming the missing key."""
    model = {"name": "m", "source": "file:///tmp/b/m", "local_path": "/tmp/models/m"}
    data = {"models": [{**model, "policy": {"live_gates": {"max_error_ratio": 0.01}}}]}
    with pytest.raises(ConfigError, match=r"serving\.monitoring_url"):
        settings_from_mapping(data)
