"""Operating the agent as a process: the admin actions, the metrics' values after a promotion, a rejection, a
rollback and an outage, `log_format: json`, and the schedule (jitter, cron) — one agent run, three models:

- ``m``: polled once an hour (jitter 500ms), so only the admin actions (which run a pass at once) move it;
- ``w``: polled every 500ms; its first version is published with the wrong ``--model``;
- ``c``: on a cron schedule, nothing published.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.service.publish import publish
from testkit.agentproc import tfs_agent
from testkit.poll import poll_until
from testkit.savedmodels import build_half_plus_two
from testkit.stack import MODEL, Stack

pytestmark = pytest.mark.slow

TOKEN = "s3cret"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    made = Stack(tmp_path, schedule={"interval": "1h", "jitter": "500ms"})
    made.config.update(log_format="json", http={"admin_token_file": str(token)})
    made.add_model("w", schedule={"interval": "500ms"})
    made.add_model("c", schedule={"cron": "*/5 * * * *"})
    yield made.start()
    made.close()


def _admin(stack: Stack, *args: str) -> dict[str, Any]:
    assert stack.agent is not None
    done = stack.agent.cli(*args, token=TOKEN)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _bytes(stack: Stack, version: int) -> int:
    manifest = json.loads((stack.bucket_dir() / str(version) / "tfs-agent-manifest.json").read_text())
    return sum(int(f["size"]) for f in manifest["files"])


def test_admin_actions_metrics_and_json_log(stack: Stack, tmp_path: Path) -> None:
    """pin, rollback, clear and the metrics they move; an invalid version shown, fixed in place and cleared;
    a TF Serving outage counted as an error; every log line JSON, with one line per transition."""
    agent = stack.agent
    assert agent is not None
    started = time.time()
    for version in (1, 2):
        stack.publish(version)
    _admin(stack, "pin", MODEL, "1")
    stack.wait_serving(1)
    assert _post(stack, f"/admin/models/{MODEL}/pin", {"version": 2}) == {"model": MODEL, "pinned": 2}
    stack.wait_serving(2)
    _promotion_metrics(stack, started)

    assert _admin(stack, "rollback", MODEL) == {"model": MODEL, "serving": 1, "quarantined": 2}
    assert agent.metric("tfs_agent_quarantined_versions", model=MODEL) == 1  # no pass needed
    assert agent.metric("tfs_agent_rollbacks_total", model=MODEL, reason="operator") == 1
    assert agent.metric("tfs_agent_serving_version", model=MODEL) == 1
    status = stack.model()
    assert (status["serving"], status["previous"], status["pinned"]) == (1, None, 2)
    assert status["quarantined"] == {"2": "operator rollback"}
    assert status["last_verdict"]["version"] == 2
    assert status["last_poll"] >= started
    assert "quarantined 2: operator rollback" in agent.cli("status").stdout

    _invalid_version_fixed_in_place(stack, tmp_path)
    _schedules(stack)
    _json_log(stack)

    stack.restart_agent(kill=True)  # starts TF Serving's config on the last validated versions
    agent = stack.agent
    assert agent is not None
    start_up = next(x for x in agent.json_log() if x["msg"] == "initial config written")
    assert start_up["models"] == "m,w"
    assert stack.server is not None
    stack.server.stop()
    outage = {"model": "w", "stage": "serving", "error": "ServingUnavailableError"}
    poll_until(
        lambda: (agent.metric("tfs_agent_errors_total", **outage) or 0) >= 1,
        timeout=60,
        interval=0.1,
        what="the outage counted",
    )
    assert (agent.metric("tfs_agent_polls_total", model="w", outcome="error") or 0) >= 1
    poll_until(
        lambda: agent.metric("tfs_agent_model_ready", model="w") == 0,
        timeout=60,
        interval=0.1,
        what="w not ready",
    )
    assert agent.get("/readyz")[0] == 503


def _post(stack: Stack, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """An admin POST as `curl -X POST -H "Authorization: Bearer ..." -d '{...}'` sends it."""
    assert stack.agent is not None
    request = urllib.request.Request(
        stack.agent.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return dict(json.loads(reply.read()))


def _promotion_metrics(stack: Stack, started: float) -> None:
    """After v1 then v2 were promoted: each metric of the README's table holds the value it promises."""
    agent = stack.agent
    assert agent is not None
    m = {"model": MODEL}
    assert agent.metric("tfs_agent_serving_version", **m) == 2
    assert agent.metric("tfs_agent_model_ready", **m) == 1
    assert agent.metric("tfs_agent_candidates_total", **m, outcome="promoted") == 2
    assert agent.metric("tfs_agent_downloaded_bytes_total", **m) == _bytes(stack, 1) + _bytes(stack, 2)
    for stage in ("detect", "download", "verify", "validate", "load", "promote", "bake"):
        count = agent.metric("tfs_agent_stage_duration_seconds_count", **m, stage=stage)
        assert (count or 0) >= (1 if stage == "detect" else 2), stage
    assert (agent.metric("tfs_agent_poll_duration_seconds_count", **m) or 0) >= 3
    assert (agent.metric("tfs_agent_polls_total", **m, outcome="ok") or 0) >= 3
    for stamp in (
        "tfs_agent_last_success_timestamp_seconds",
        "tfs_agent_last_poll_success_timestamp_seconds",
    ):
        assert started <= (agent.metric(stamp, **m) or 0) <= time.time(), stamp
    assert agent.metric("tfs_agent_quarantined_versions", **m) == 0
    assert agent.metric("tfs_agent_rollbacks_total", **m, reason="bake_failed") == 0


def _invalid_version_fixed_in_place(stack: Stack, tmp_path: Path) -> None:
    """A version published with the wrong --model is quarantined with the fix in its reason; republished
    with --force --model w and cleared, it is judged again and promoted."""
    agent = stack.agent
    assert agent is not None
    src = build_half_plus_two(tmp_path / "build", 1)
    uri = f"file://{stack.bucket_dir('w')}"
    publish(src, uri, 1, progress=False, model="other")
    reason = stack.wait_quarantined(1, model="w")
    assert "invalid" in reason
    assert "--model w" in reason
    assert agent.metric("tfs_agent_quarantined_versions", model="w") == 1
    assert agent.metric("tfs_agent_candidates_total", model="w", outcome="quarantined") == 1
    fixed = tfs_agent("publish", str(src), uri, "--version", "1", "--force", "--model", "w", "--no-progress")
    assert fixed.returncode == 0, fixed.stderr
    assert _admin(stack, "clear", "w", "1") == {"model": "w", "cleared": 1}
    stack.wait_serving(1, model="w")
    assert agent.metric("tfs_agent_quarantined_versions", model="w") == 0


def _schedules(stack: Stack) -> None:
    """A cron model has a poll interval (its longest gap) for the stale alert; jitter keeps its 500ms."""
    agent = stack.agent
    assert agent is not None
    assert agent.metric("tfs_agent_poll_interval_seconds", model="c") == 300
    assert agent.metric("tfs_agent_poll_interval_seconds", model=MODEL) == 3600
    assert (agent.metric("tfs_agent_polls_total", model="c", outcome="ok") or 0) >= 1
    scheduled = {line["model"]: line for line in agent.json_log() if line["msg"] == "scheduled"}
    assert scheduled[MODEL]["jitter_s"] == 0.5
    assert "jitter_s" not in scheduled["c"]


def _json_log(stack: Stack) -> None:
    """Every line parses; admin lines carry model/version/outcome; each transition of w's version 1 (it was
    quarantined, then promoted) is one line, whatever the number of passes in between."""
    assert stack.agent is not None
    lines = stack.agent.json_log()
    pin = next(x for x in lines if x["msg"] == "admin pin")
    assert (pin["model"], pin["version"], pin["outcome"], pin["stage"]) == (MODEL, 1, 200, "admin")
    of_w1 = [x["msg"] for x in lines if x.get("model") == "w" and x.get("version") == 1]
    for transition in ("quarantined", "quarantine cleared", "candidate", "staged", "validated", "promoted"):
        assert of_w1.count(transition) == 1, (transition, of_w1)
    assert not [x for x in lines if "maximum number of running instances" in x["msg"]]
