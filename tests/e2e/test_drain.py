"""The fleet's drain behind a real load balancer: no request is answered by a pod while it loads.

Three pods (agent + tfs-devserver each) behind HAProxy, which balances gRPC per request and checks every
agent's /readyz. Which pod answered each request, and when, comes from HAProxy's request log; when each
server loaded, from the server's own log (``Approving load`` … ``Successfully loaded``): never from the
agents' reports. docs/deploying.md#draining-connections-and-termination.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.fleet import Pod, publish_version, shadow_loads, wait_for
from testkit.haproxy import HAProxy, ReadyzWatch, answered_while_loading, in_front_of
from testkit.stack import MODEL, Load

pytestmark = pytest.mark.slow

FLEET = {
    "name": "prod",
    "max_unavailable": 1,
    "canary": 1,
    "canary_bake": "2s",
    "slot_ttl": "6s",
    "heartbeat": "1s",
    "drain": {"enabled": True, "wait": "5s", "min_ready": 1},
}
GATES = {"max_error_ratio": 0.05, "max_p99_ratio": 1000.0, "min_requests": 10}
NAMES = ["pod-a", "pod-b", "pod-c"]


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[list[Pod]]:
    """Three pods on one file:// bucket, v1 serving on each."""
    bucket = f"file://{tmp_path}/bucket/m"
    Path(bucket.removeprefix("file://")).mkdir(parents=True)
    publish_version(tmp_path, bucket, 1)
    made: list[Pod] = []
    try:
        for name in NAMES:
            made.append(Pod(tmp_path / name, name, bucket, FLEET, policy={"live_gates": GATES}))
            made[-1].start()
        on_version(made, 1)
        yield made
    finally:
        for pod in made:
            pod.close()


@pytest.fixture
def proxy(tmp_path: Path, pods: list[Pod]) -> Iterator[HAProxy]:
    with in_front_of(tmp_path / "haproxy", {pod.pod: pod for pod in pods}) as made:
        yield made


def on_version(pods: list[Pod], version: int, timeout: float = 240) -> None:
    wait_for(
        f"every pod serving {version}",
        lambda: all((m := p.model()).get("serving") == version and m.get("pending") is None for p in pods),
        timeout,
    )


def test_no_request_reaches_a_loading_pod(tmp_path: Path, pods: list[Pod], proxy: HAProxy) -> None:
    """Two releases roll through the fleet under load through HAProxy: every pod loads each (the validating
    pod its shadow too), yet no request overlaps a load on the pod that answered it, none fails, and each
    pod's /readyz said why it left the traffic."""
    since = time.time()
    watch = ReadyzWatch(proxy.backends)
    watch.start()
    load = Load(tmp_path / "load.json", proxy.address, 50.0, "stable")
    try:
        for version in (2, 3):
            publish_version(tmp_path, pods[0].bucket, version)
            on_version(pods, version)
    finally:
        result = load.stop()
        not_ready = watch.stop()
    spans = {p.pod: [s for s in p.load_spans() if s[0] >= since] for p in pods}
    for version in (2, 3):  # the measurement covered what it must: every pod loaded, one validated
        assert all(any(s[2] == MODEL and s[3] == version for s in spans[p.pod]) for p in pods), spans
        assert shadow_loads(pods, version) == 1
    requests = [r for r in proxy.requests() if r.path.endswith("/Predict")]
    assert len(requests) == result["sent"]  # HAProxy logged every request the client sent
    assert result["failed"] == 0, result["errors"]
    loading = answered_while_loading(requests, spans, MODEL)
    assert loading == [], f"{len(loading)} of {len(requests)} requests answered by a loading pod"
    reasons = {(pod, why) for _, pod, by_model in not_ready for why in by_model.values()}
    assert {pod for pod, why in reasons if "drain" in why and "swap" in why} == set(NAMES), reasons
    assert any("drain" in why and "validation" in why for _, why in reasons), reasons
