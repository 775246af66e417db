"""serving.memory_limit, the running agent: a version whose 2x peak does not fit is refused, not loaded."""

from __future__ import annotations

import pytest

from agent.pipeline.volume import volume_usage
from testkit.poll import poll_until
from testkit.stack import Stack

pytestmark = pytest.mark.slow


def test_too_big_for_the_memory_limit_is_a_retry_until_the_limit_is_raised(stack: Stack) -> None:
    """v2 beside v1 exceeds memory_limit: a retry with the reason in /status, v1 keeps serving, nothing is
    quarantined and TF Serving never sees v2; an agent restarted with a bigger limit promotes it."""
    stack.start()
    stack.publish(1)
    stack.wait_serving(1)
    one = volume_usage([stack.volume / "m" / "1"])
    stack.config["serving"].update(memory_limit=int(one * 1.5), memory_factor=1.0)
    stack.restart_agent(kill=False, between=lambda: stack.publish(2))
    reason = poll_until(lambda: stack.model().get("last_error"), timeout=60, what="the refusal")
    assert "serving.memory_limit" in reason
    assert "only a drained pod" in reason
    assert stack.model()["quarantined"] == {}
    assert set(stack.tfs_state()) == {1}
    assert stack.agent is not None
    counted = {"model": "m", "stage": "memory", "error": "MemoryLimitError"}
    assert (stack.agent.metric("tfs_agent_errors_total", **counted) or 0) >= 1
    assert stack.agent.get("/readyz")[0] == 200
    stack.config["serving"]["memory_limit"] = int(one * 3)
    stack.restart_agent(kill=False)
    stack.wait_serving(2)
