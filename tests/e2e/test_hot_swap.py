"""The agent as a real process against TF Serving (tfs-devserver, or the stock binary via TFS_BINARY):
promotion under load, rejection, rollback, restarts of either process, policies, the admin API.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.faulty_models import build_degrading, build_wrong_once
from testkit.poll import poll_until
from testkit.savedmodels import build_half_plus_two, corrupt_savedmodel
from testkit.stack import MODEL, Stack

pytestmark = pytest.mark.slow


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[list[Stack]]:
    made: list[Stack] = []
    yield made
    for stack in made:
        stack.close()


def make(stacks: list[Stack], tmp_path: Path, **kw: Any) -> Stack:
    stack = Stack(tmp_path, **kw)
    stacks.append(stack)
    return stack.start()


def corrupt_model(base: Path, version: int) -> Path:
    path = build_half_plus_two(base, version)
    corrupt_savedmodel(path)
    return path


def bad_model(base: Path, version: int) -> Path:
    return build_half_plus_two(base, version, b=3.0)


def test_promotes_under_load_and_rejects_golden_mismatch(stacks: list[Stack], tmp_path: Path) -> None:
    """v1 → v2 under load on the 'stable' label with zero failed requests; v3 (wrong answers) is rejected."""
    stack = make(stacks, tmp_path)
    stack.publish(1)
    stack.wait_serving(1)
    load = stack.load(rate=50)
    stack.publish(2)
    stack.wait_serving(2)
    stack.publish(3, bad_model)
    reason = stack.wait_quarantined(3)
    assert "validation" in reason
    result = load.stop()
    assert result["sent"] > 0
    assert result["failed"] == 0, result["errors"]
    assert load.versions() <= {1, 2}
    assert stack.model()["serving"] == 2
    assert stack.tfs_state()[2][0] == "AVAILABLE"
    assert "m__candidate" not in stack.config_file.read_text()
    code, metrics = stack.agent.get("/metrics")  # type: ignore[union-attr]
    assert code == 200
    assert b'tfs_agent_serving_version{model="m"} 2.0' in metrics
    assert b'tfs_agent_candidates_total{model="m",outcome="rejected"} 1.0' in metrics
    assert stack.agent.get("/readyz")[0] == 200  # type: ignore[union-attr]


def test_corrupt_model_is_rejected_at_load(stacks: list[Stack], tmp_path: Path) -> None:
    """A version whose saved_model.pb does not parse fails its shadow load; v1 keeps serving (B6, B14)."""
    stack = make(stacks, tmp_path)
    stack.publish(1)
    stack.wait_serving(1)
    stack.publish(2, corrupt_model)
    reason = stack.wait_quarantined(2)
    assert "load" in reason
    assert stack.model()["serving"] == 1
    assert stack.tfs_state()[1][0] == "AVAILABLE"


def test_bake_failure_rolls_back_label_safely(stacks: list[Stack], tmp_path: Path) -> None:
    """A version that passes validation but degrades under traffic is rolled back; no request fails."""
    stack = make(stacks, tmp_path, policy={"bake_time": "3s"})
    stack.publish(1)
    stack.wait_serving(1)
    load = stack.load(rate=20)
    stack.publish(2, lambda base, v: build_degrading(base, v, good_calls=3))
    reason = stack.wait_quarantined(2)
    assert "bake" in reason
    stack.wait_serving(1)
    assert load.stop()["failed"] == 0
    _, metrics = stack.agent.get("/metrics")  # type: ignore[union-attr]
    assert b'tfs_agent_rollbacks_total{model="m",reason="bake_failed"} 1.0' in metrics


def _in_its_bake(stack: Stack, after: float | None = None) -> dict[str, Any]:
    """The pending promotion once at the bake step, or (``after``, epoch s) once a bake window beginning
    later than that is recorded."""

    def baking(pending: dict[str, Any]) -> bool:
        if after is None:
            return pending.get("step") == "bake"
        return bool(pending.get("bake_started", 0) > after)

    return poll_until(
        lambda: baking(p := stack.model().get("pending") or {}) and p,
        timeout=60,
        interval=0.1,
        what="the bake step",
    )


def test_agent_sigkilled_mid_promotion_converges(stacks: list[Stack], tmp_path: Path) -> None:
    """SIGKILL while the new version bakes: the restarted agent watches the rest of the bake window, then
    finishes the promotion; clients never fail."""
    stack = make(stacks, tmp_path, policy={"bake_time": "20s"})
    stack.publish(1)
    stack.wait_serving(1, timeout=90)
    load = stack.load(rate=30)
    stack.publish(2)
    killed = _in_its_bake(stack, after=0)
    stack.restart_agent(kill=True)
    resumed = _in_its_bake(stack, after=killed["bake_started"])  # the rest of the window the kill cut short
    assert resumed["bake_seconds"] < 20
    stack.wait_serving(2)
    assert load.stop()["failed"] == 0
    assert stack.tfs_state()[2][0] == "AVAILABLE"
    assert stack.model()["quarantined"] == {}
    assert "recovered: resuming the bake" in stack.agent.log()  # type: ignore[union-attr]


def test_agent_sigkilled_mid_bake_of_a_version_going_bad_rolls_back(
    stacks: list[Stack], tmp_path: Path
) -> None:
    """SIGKILL during the bake, and the version goes wrong while the agent is down: the restarted agent's
    resumed bake catches it and rolls back to the recorded previous version, counted as a bake failure."""
    stack = make(stacks, tmp_path, policy={"bake_time": "30s"})
    stack.publish(1)
    stack.wait_serving(1, timeout=90)
    trigger = tmp_path / "v2-goes-wrong"
    stack.publish(2, lambda base, v: build_wrong_once(base, v, trigger=trigger))
    _in_its_bake(stack)
    stack.restart_agent(kill=True, between=trigger.touch)
    reason = stack.wait_quarantined(2)
    assert reason.startswith("bake: resumed after a restart: "), reason
    stack.wait_serving(1)
    assert stack.tfs_state()[1][0] == "AVAILABLE"
    assert stack.agent.metric("tfs_agent_rollbacks_total", model=MODEL, reason="bake_failed") == 1  # type: ignore[union-attr]


def test_agent_sigkilled_while_loading_undoes_and_retries(stacks: list[Stack], tmp_path: Path) -> None:
    """SIGKILL with a promotion at 'load': the restart undoes it, then promotes the version again."""
    stack = make(stacks, tmp_path)
    stack.publish(1)
    stack.wait_serving(1)
    stack.agent.kill()  # type: ignore[union-attr]
    state = stack.volume / ".tfs-agent" / "state.json"
    data = json.loads(state.read_text())
    stack.publish(2)
    data["models"][MODEL]["pending"] = {"version": 2, "previous": 1, "step": "load", "started": 0.0}
    state.write_text(json.dumps(data))
    stack.restart_agent(kill=False)
    stack.wait_serving(2)


@pytest.mark.parametrize("step", ["any", "bake"])
def test_tfserving_restarted_mid_swap_converges(stacks: list[Stack], tmp_path: Path, step: str) -> None:
    """TF Serving killed during a promotion and restarted from the agent's file: the agent converges on the
    new version (an outage is no verdict on it), and nothing is quarantined."""
    stack = make(stacks, tmp_path, policy={"bake_time": "8s"})
    stack.publish(1)
    stack.wait_serving(1)
    stack.publish(2)

    def reached() -> bool:
        pending = stack.model().get("pending")
        return pending is not None and step in ("any", pending.get("step"))

    poll_until(reached, timeout=60, interval=0.1, what=f"a promotion at step {step}")
    stack.restart_server(kill=True)
    stack.wait_serving(2, timeout=90)
    model = poll_until(
        lambda: (m := stack.model()).get("ready") and m, timeout=60, interval=0.1, what="ready"
    )
    assert model["quarantined"] == {}
    assert stack.tfs_state()[2][0] == "AVAILABLE"


def test_window_holds_newer_version(stacks: list[Stack], tmp_path: Path) -> None:
    """Outside the promotion window a newer version waits; the first deployment is never held."""
    stack = make(stacks, tmp_path, policy={"window": "0 0 1 1 *"})
    stack.publish(1)
    stack.wait_serving(1)
    stack.publish(2)
    plan = poll_until(
        lambda: (p := stack.model().get("last_plan")) and p["action"] == "wait" and p,
        timeout=30,
        interval=0.1,
        what="the window hold",
    )
    assert plan["version"] == 2
    assert "window" in plan["reason"]
    assert stack.model()["serving"] == 1


def test_admin_api_needs_the_token(stacks: list[Stack], tmp_path: Path) -> None:
    """Admin requests without or with a wrong token are refused; with it, pin and unpin work."""
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    stack = Stack(tmp_path)
    stack.config["http"] = {"admin_token_file": str(token)}
    stacks.append(stack.start())
    for v in (1, 2):
        stack.publish(v)
        stack.wait_serving(v)
    assert stack.agent is not None
    cli = stack.agent.cli
    refused = cli("pin", MODEL, "1", token="wrong")
    assert refused.returncode != 0
    assert "401" in refused.stderr or "token" in refused.stderr.lower()
    assert stack.model()["pinned"] is None
    assert cli("pin", MODEL, "1").returncode != 0  # no token at all: refused before sending
    done = cli("pin", MODEL, "1", token="s3cret-token")
    assert done.returncode == 0, done.stderr
    stack.wait_serving(1)
    assert cli("unpin", MODEL, token="s3cret-token").returncode == 0
    stack.wait_serving(2)
    shown = cli("status")
    assert "serving=2" in shown.stdout


def test_gcs_bucket_end_to_end(stacks: list[Stack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gs:// through the real fake-gcs-server: publish, the agent stages and promotes, an incomplete upload
    (no manifest) is never picked up."""
    from testkit.gcs import FakeGcsServer

    gcs = FakeGcsServer(tmp_path)
    gcs.start()
    try:
        gcs.client().create_bucket("ml-models")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
        stack = Stack(
            tmp_path, source=f"gs://ml-models/{MODEL}", agent_env={"STORAGE_EMULATOR_HOST": gcs.url}
        )
        stacks.append(stack.start())
        stack.publish(1)
        stack.wait_serving(1)
        half = build_half_plus_two(tmp_path / "build", 2)
        blob = gcs.client().bucket("ml-models").blob(f"{MODEL}/2/saved_model.pb")
        blob.upload_from_filename(str(half / "saved_model.pb"))  # half an upload: no manifest
        stack.publish(3)
        stack.wait_serving(3)
        assert not (stack.volume / MODEL / "2").exists()
        assert stack.model()["quarantined"] == {}
    finally:
        gcs.stop()
