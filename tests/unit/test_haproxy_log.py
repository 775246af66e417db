"""HAProxy's request log read back, and each request matched against the answering pod's load windows."""

from __future__ import annotations

import math

from testkit.haproxy import LOG_FORMAT, Request, answered_while_loading, parse_requests

PREDICT = "/tensorflow.serving.PredictionService/Predict"


def test_log_lines_parse_to_start_and_end_and_notices_are_skipped() -> None:
    assert LOG_FORMAT.split()[:3] == ["%[date(0,ms)]", "%Ta", "%s"]  # the fields the parser reads
    lines = [
        "[NOTICE]   (12) : New worker (13) forked",
        f"1700000000250 50 pod-a 200 {PREDICT}",
        f"1700000000300 -1 <NOSRV> 503 {PREDICT}",
        "",
    ]
    assert parse_requests(lines) == [
        Request(1700000000.2, 1700000000.25, "pod-a", 200, PREDICT),
        Request(1700000000.3, 1700000000.3, "<NOSRV>", 503, PREDICT),
    ]


def _request(pod: str, start: float, end: float) -> Request:
    return Request(start, end, pod, 200, PREDICT)


def test_only_the_answering_pods_own_loads_of_the_model_or_its_shadow_count() -> None:
    spans = {
        "pod-a": [(10.0, 11.0, "m", 2), (20.0, 21.0, "other", 2), (90.0, math.inf, "m__candidate", 3)],
        "pod-b": [(40.0, 41.0, "m", 2)],
    }
    inside = _request("pod-a", 10.5, 10.6)
    straddling = _request("pod-a", 9.9, 10.0)  # ends the instant the load starts
    shadow_unfinished = _request("pod-a", 99.0, 99.1)
    requests = [
        inside,
        straddling,
        shadow_unfinished,
        _request("pod-a", 11.01, 11.02),  # after the load
        _request("pod-a", 20.5, 20.6),  # another model's load
        _request("pod-a", 40.5, 40.6),  # pod-b was loading, pod-a answered
        _request("pod-c", 10.5, 10.6),  # no spans known for it
    ]
    hits = answered_while_loading(requests, spans, "m")
    assert [r for r, _ in hits] == [inside, straddling, shadow_unfinished]
    assert [s[2] for _, s in hits] == ["m", "m", "m__candidate"]
