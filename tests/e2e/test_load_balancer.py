"""Pods behind a real load balancer: HAProxy balancing gRPC per request, checking each agent's /readyz."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.haproxy import HAProxy, in_front_of
from testkit.poll import poll_until
from testkit.stack import Load, Stack

pytestmark = pytest.mark.slow


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[list[Stack]]:
    """Two pods (agent + TF Serving) on one bucket, v1 serving on both."""
    bucket = f"file://{tmp_path}/bucket/m"
    made = []
    for i in range(2):
        (tmp_path / f"pod{i}").mkdir()
        made.append(Stack(tmp_path / f"pod{i}", source=bucket))
    try:
        made[0].publish(1)
        for pod in made:
            pod.start()
        for pod in made:
            pod.wait_serving(1)
        yield made
    finally:
        for pod in made:
            pod.close()


@pytest.fixture
def proxy(tmp_path: Path, pods: list[Stack]) -> Iterator[HAProxy]:
    """HAProxy in front of ``pods``, every pod UP."""
    with in_front_of(tmp_path / "haproxy", {f"pod{i}": pod for i, pod in enumerate(pods)}) as made:
        yield made


def _grows(proxy: HAProxy, pod: str, by: int, timeout: float = 60) -> None:
    start = proxy.answered()[pod]
    poll_until(lambda: proxy.answered()[pod] >= start + by, timeout=timeout, what=f"{by} requests on {pod}")


def test_a_pod_out_of_readiness_gets_no_requests_and_comes_back(
    tmp_path: Path, pods: list[Stack], proxy: HAProxy
) -> None:
    """A pod whose agent stops answering /readyz is taken out by HAProxy (no request reaches it) and gets
    traffic again once /readyz answers 200; no client request fails meanwhile."""
    load = Load(tmp_path / "load.json", proxy.address, 50.0, "stable")
    try:
        _grows(proxy, "pod0", 10)
        _grows(proxy, "pod1", 10)  # per request: both pods answer one client's single h2 connection
        agent = pods[1].agent
        assert agent is not None
        assert agent.proc is not None
        os.kill(agent.proc.pid, signal.SIGSTOP)
        try:
            proxy.wait_status("pod1", "DOWN")
            out = proxy.answered()["pod1"]
            _grows(proxy, "pod0", 50)
            assert proxy.answered()["pod1"] == out
        finally:
            os.kill(agent.proc.pid, signal.SIGCONT)
        proxy.wait_status("pod1", "UP")
        _grows(proxy, "pod1", 10)
    finally:
        result = load.stop()
    assert result["sent"] > 0
    assert result["failed"] == 0, result["errors"]
