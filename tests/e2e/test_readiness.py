"""Readiness of a running agent: answered from the state file and TF Serving, never waiting for a pass."""

from __future__ import annotations

from testkit.poll import poll_until
from testkit.stack import Stack


def test_restarted_agent_is_ready_before_its_first_pass_finishes(stack: Stack) -> None:
    """An agent restarted while v1 serves answers /readyz 200 during a first pass that bakes v2 for 30 s;
    /healthz is its own answer (the agent works) and stays 200 throughout."""
    stack.start()
    stack.publish(1)
    stack.wait_serving(1)
    stack.config["models"][0]["policy"]["bake_time"] = "30s"
    stack.restart_agent(kill=True, between=lambda: stack.publish(2))
    agent = stack.agent
    assert agent is not None

    def ready_mid_pass() -> bool:
        code, _ = agent.get("/readyz")
        passes = agent.metric("tfs_agent_poll_duration_seconds_count", model="m") or 0
        assert passes == 0, "the first pass ended before /readyz answered 200"
        return code == 200

    poll_until(ready_mid_pass, timeout=25, what="/readyz 200 before the first pass ends")
    assert agent.get("/healthz")[0] == 200
    poll_until(
        lambda: (stack.model().get("pending") or {}).get("step") == "bake", timeout=25, what="v2 in its bake"
    )
    code, body = agent.get("/readyz")
    assert (code, body) == (200, {"ready": True, "not_ready": {}})
