"""The README's policy table and model settings, shown by the agent as a process against TF Serving and a
file:// bucket: `versions: latest` following a bucket-side rollback, `keep_versions`, several labels,
`candidate_suffix`, `download_concurrency`, and the golden-data policies (metric gates, champion_tolerance,
replace_below) with the validation metric they export."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.poll import poll_until
from testkit.stack import MODEL, Stack

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    made = Stack(tmp_path)
    yield made
    made.close()


def _wait_on_disk(stack: Stack, *versions: int) -> None:
    """Until exactly ``versions`` of ``m`` are on the volume (pruning follows the promotion)."""

    def on_disk() -> set[int]:
        return {int(p.name) for p in (stack.volume / MODEL).iterdir() if p.name.isdigit()}

    poll_until(
        lambda: on_disk() == set(versions), timeout=60, interval=0.1, what=f"exactly {versions} on disk"
    )


def test_latest_follows_a_bucket_rollback_and_keeps_one_version(stack: Stack) -> None:
    """`versions: latest` goes back to 1 when 2 is deleted from the bucket; `keep_versions: 1` leaves only the
    serving version on disk; every label moves; the shadow model carries `candidate_suffix`."""
    stack.config["candidate_suffix"] = "__shadow"
    stack.config["models"][0].update(
        keep_versions=1, labels=["stable", "canary"], download_concurrency=1, policy={"versions": "latest"}
    )
    stack.start()
    for version in (1, 2):
        stack.publish(version)
        stack.wait_serving(version)
        _wait_on_disk(stack, version)
    # pruned: no rollback target is claimed (written just after the directory goes, so poll for it)
    poll_until(lambda: stack.model()["previous"] is None, timeout=30, what="previous cleared after the prune")
    shutil.rmtree(stack.bucket_dir() / "2")
    stack.wait_serving(1)
    _wait_on_disk(stack, 1)
    assert stack.server is not None
    for label in ("stable", "canary"):
        assert stack.server.predict(MODEL, [1.0], label=label) == ([2.5], 1)
    assert "m__shadow" in stack.server.output_text()
    assert (stack.volume / MODEL / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert stack.agent is not None
    assert "maximum number of running instances" not in stack.agent.log()
    refused = stack.agent.cli("rollback", MODEL, token="any")  # no admin_token_file: admin is off
    assert refused.returncode != 0
    assert "403" in refused.stderr
    assert stack.model()["serving"] == 1


GOLDEN_METRICS = {"instances": [1.0, 2.0, 5.0], "labels": [2.5, 3.0, 4.5], "metrics": {"mae": {"max": 0.1}}}


def test_golden_policies_gate_and_export_the_validation_metric(stack: Stack, tmp_path: Path) -> None:
    """Metric gates reject a candidate over `max`; `champion_tolerance` rejects one trailing the serving
    version; `replace_below` holds a candidate while the serving version performs; after a promotion
    `tfs_agent_validation_metric{role="serving"}` is the new serving version's score, with no tolerance.
    `versions: pinned` promotes nothing by itself; a pin serves that version, also an older one and also
    outside a closed window (a pin overrides `versions` and the time gates)."""
    (tmp_path / "golden.json").write_text(json.dumps(GOLDEN_METRICS))
    (tmp_path / "token").write_text("t0ken\n")
    stack.config["http"] = {"admin_token_file": str(tmp_path / "token")}
    stack.add_model("champ", policy={"champion_tolerance": 0.01})
    stack.add_model("floor", policy={"replace_below": {"mae": 0.01}})
    stack.add_model("pinned", policy={"versions": "pinned", "window": "0 0 1 1 *", "bake_time": "0s"})
    stack.start()
    assert stack.agent is not None
    for version in (1, 2):
        stack.publish(version, model="pinned")
    for model in (MODEL, "champ", "floor"):
        stack.publish(1, model=model)  # y = x/2 + 2: mae 0 on the golden labels
    assert "pinned" in stack.wait_plan("idle", None, model="pinned")
    assert stack.agent.cli("pin", "pinned", "2", token="t0ken").returncode == 0
    for model in (MODEL, "champ", "floor"):
        stack.wait_serving(1, model=model)
        stack.publish(2, model=model, b=2.05)  # mae 0.05: within the gate, 0.05 behind the champion
    stack.wait_serving(2)
    serving = {"model": MODEL, "metric": "mae", "role": "serving"}
    assert stack.agent.metric("tfs_agent_validation_metric", **serving) == pytest.approx(0.05)
    assert "champion" in stack.wait_quarantined(2, model="champ")
    reason = stack.wait_plan("wait", 2, model="floor")
    assert "still performs" in reason
    stack.publish(3, b=2.5)  # mae 0.5: over the gate's max
    assert "mae" in stack.wait_quarantined(3)
    candidate = {"model": MODEL, "metric": "mae", "role": "candidate"}
    assert stack.agent.metric("tfs_agent_validation_metric", **candidate) == pytest.approx(0.5)
    assert stack.agent.metric("tfs_agent_validation_metric", **serving) == pytest.approx(0.05)
    assert (stack.model()["serving"], stack.model("champ")["serving"], stack.model("floor")["serving"]) == (
        2,
        1,
        1,
    )
    stack.wait_serving(2, model="pinned")
    assert stack.agent.cli("pin", "pinned", "1", token="t0ken").returncode == 0
    stack.wait_serving(1, model="pinned")
