"""Wedge detection with the agent as a process: another client wedges TF Serving's ReloadConfig with a path
that has no integer version (docs/tfserving-behaviour.md#b12); the agent reports it (gauge, /status,
/livez/tfserving 503) while v1 keeps serving, and once TF Serving is restarted — what the kubelet does on
that 503 — the wedge clears and the waiting candidate is promoted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.adapters.tfserving import config_text
from agent.core.domain import ServedModel
from testkit.poll import poll_until
from testkit.stack import MODEL, Stack

pytestmark = pytest.mark.slow


def wedge(stack: Stack, stuck: Path) -> None:
    """ReloadConfig with the agent's models plus one whose base_path holds no integer version: it never
    returns, and every later reload queues behind it."""
    assert stack.server is not None
    stuck.mkdir()
    current = config_text.parse(stack.config_file.read_text())
    text = config_text.render([*current, ServedModel("stuck", str(stuck), (1,))])
    with pytest.raises(grpc.RpcError) as err:
        stack.server.reload(text, timeout=1)
    assert err.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_wedged_reloads_are_reported_and_a_restart_of_tf_serving_clears_them(
    stack: Stack, tmp_path: Path
) -> None:
    """Two ReloadConfig deadlines in a row with status answering: tfs_agent_reload_wedged 1, the reason in
    /status, /livez/tfserving 503, v1 still answers; after a TF Serving restart all clear and v2 goes live."""
    stack.config["serving"].update(reload_timeout="8s", wedge_reload_deadlines=2, wedge_liveness=True)
    stack.start()
    agent = stack.agent
    assert agent is not None
    assert stack.server is not None
    stack.publish(1)
    stack.wait_serving(1)
    assert agent.get("/livez/tfserving")[0] == 200
    assert agent.metric("tfs_agent_reload_wedged", model=MODEL) == 0

    wedge(stack, tmp_path / "stuck")
    stack.publish(2)

    def livez() -> Any:
        code, body = agent.get("/livez/tfserving")
        return code == 503 and body.decode()

    reason = poll_until(livez, timeout=120, interval=0.5, what="/livez/tfserving 503")
    assert "2 ReloadConfig calls in a row ran past their deadline while GetModelStatus answered" in reason
    assert agent.metric("tfs_agent_reload_wedged", model=MODEL) == 1
    status = agent.status()["tfserving"]
    assert status["reload_wedged"] is True
    assert "restart TF Serving" in status["reason"]
    # The pass that retries next fails with the wedge named (the first failing one may still predate it).
    poll_until(
        lambda: "look wedged" in (stack.model()["last_error"] or ""),
        timeout=60,
        interval=0.1,
        what="the wedge in last_error",
    )
    assert stack.model()["serving"] == 1
    assert stack.server.predict(MODEL, [1.0])[1] == 1  # serving goes on; only updates are stuck

    stack.restart_server(kill=True)  # what the kubelet does once the livenessProbe fails
    stack.wait_serving(2, timeout=120)
    assert agent.get("/livez/tfserving")[0] == 200
    assert agent.metric("tfs_agent_reload_wedged", model=MODEL) == 0
    assert agent.status()["tfserving"] == {
        "reload_wedged": False,
        "reload_deadlines_in_a_row": 0,
        "reason": None,
    }
