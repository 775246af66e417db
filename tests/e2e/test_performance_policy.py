"""The performance policy (docs/policies.md) end to end, on fresh golden data: the agent and TF Serving as
processes, v1 serving and scoring 85 % against a floor of 80 % (v2 waits), the golden file refreshed in the
bucket (file:// or gs:// through fake-gcs-server) with data on which v1 scores 78 % → v1 re-scored → v2
(88 %) promoted. A refresh that does not parse is reported and changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.poll import poll_until
from testkit.savedmodels import build_half_plus_two
from testkit.stack import Stack

pytestmark = pytest.mark.slow

# half_plus_two read as a classifier (accuracy thresholds one output at 0.5): v1 = 0.5x + 2 says 1 for
# x ≥ -3, v2 = 0.5x + 3 for x ≥ -5. They disagree only on x = -4.
V1_RIGHT_BOTH_RIGHT = [(0.0, 1), (-10.0, 0)]


def golden(rows: list[tuple[float, int]]) -> bytes:
    """A golden file of (x, label) rows, gated at the 80 % floor (candidates must reach 80 % too)."""
    data = {
        "instances": [x for x, _ in rows],
        "labels": [label for _, label in rows],
        "metrics": {"accuracy": {"min": 0.8}},
    }
    return json.dumps(data).encode()


#: v1 scores 85 % (15 of 100 labels disagree with both models).
TODAY = golden([(0.0, 1)] * 40 + [(-10.0, 0)] * 45 + [(0.0, 0)] * 15)
#: The world moved on: 10 examples at x = -4 are positives (v1 wrong, v2 right), 12 both get wrong:
#: v1 scores 78 %, v2 88 %.
LATER = golden([(0.0, 1)] * 40 + [(-10.0, 0)] * 38 + [(-4.0, 1)] * 10 + [(0.0, 0)] * 12)


class GoldenStore:
    """Where the golden file lives and how the labelling pipeline rewrites it."""

    def __init__(self, uri: str, write: Callable[[bytes], None]) -> None:
        self.uri, self.write = uri, write


@pytest.fixture(params=["file", "gs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[GoldenStore, dict[str, str]]]:
    """The golden file in a file:// directory (rewritten by rename) or in fake-gcs-server."""
    if request.param == "file":
        path = tmp_path / "labels" / "golden.json"
        path.parent.mkdir()

        def write_file(data: bytes) -> None:
            temp = path.with_suffix(".tmp")
            temp.write_bytes(data)
            os.replace(temp, path)

        yield GoldenStore(f"file://{path}", write_file), {}
        return
    from testkit.gcs import FakeGcsServer

    gcs = FakeGcsServer(tmp_path)
    gcs.start()
    try:
        bucket = gcs.client().create_bucket("labels")

        def write_blob(data: bytes) -> None:
            bucket.blob("golden/m.json").upload_from_string(data, content_type="application/json")

        yield GoldenStore("gs://labels/golden/m.json", write_blob), {"STORAGE_EMULATOR_HOST": gcs.url}
    finally:
        gcs.stop()


def held_reason(stack: Stack) -> str:
    plan = stack.model().get("last_plan") or {}
    return str(plan.get("reason", "")) if plan.get("action") == "wait" else ""


def test_refreshed_golden_file_replaces_a_degraded_version(
    tmp_path: Path, store: tuple[GoldenStore, dict[str, str]]
) -> None:
    """85 % ≥ 80 % holds v2 with the numbers shown (``tfs-agent once`` exits 3); a broken refresh is
    reported (/status, ``tfs-agent status``, the metric) and changes nothing; the refresh on which v1 scores
    78 % re-scores v1 and promotes v2, whose score then shows as serving."""
    golden_store, env = store
    golden_store.write(TODAY)
    stack = Stack(
        tmp_path, golden=golden_store.uri, agent_env=env, policy={"replace_below": {"accuracy": 0.8}}
    )
    try:
        stack.start()
        stack.publish(1)
        stack.wait_serving(1, timeout=120)
        stack.publish(2, lambda base, v: build_half_plus_two(base, v, b=3.0))
        reason = poll_until(
            lambda: held_reason(stack), timeout=60, interval=0.1, what="v2 held by the performance policy"
        )
        assert "serving accuracy 0.85 ≥ 0.8 on golden generation" in reason
        assert 'tfs_agent_validation_metric{metric="accuracy",model="m",role="serving"} 0.85' in metrics(
            stack
        )

        golden_store.write(b'{"instances": [1.0, ')  # the labelling pipeline uploads half a file
        problem = poll_until(
            lambda: evidence(stack).get("problems", {}),
            timeout=30,
            interval=0.1,
            what="the broken refresh reported",
        )
        assert "not valid JSON" in problem["golden"]
        assert 'tfs_agent_evidence_ok{model="m",source="golden"} 0.0' in metrics(stack)
        assert "serving accuracy 0.85" in held_reason(stack)
        assert stack.model()["serving"] == 1
        shown = stack.agent.cli("status").stdout  # type: ignore[union-attr]
        assert "waiting: version 2: serving version still performs: serving accuracy 0.85 ≥ 0.8" in shown
        assert "serving score: version 1: accuracy 0.85" in shown
        assert "evidence problem (golden): golden refresh not used:" in shown

        golden_store.write(LATER)
        model = stack.wait_serving(2, timeout=90)
        assert model["evidence"]["serving_score"]["version"] == 2
        assert model["evidence"]["serving_score"]["metrics"]["accuracy"] == pytest.approx(0.88)
        assert model["evidence"]["problems"] == {}
        assert 'tfs_agent_validation_metric{metric="accuracy",model="m",role="serving"} 0.88' in metrics(
            stack
        )
        log = stack.agent.log()  # type: ignore[union-attr]
        assert "serving version scored" in log
        assert "accuracy=0.78" in log
    finally:
        stack.close()


def once(stack: Stack) -> subprocess.CompletedProcess[str]:
    """``tfs-agent once`` with the running agent's config, while the agent itself is stopped."""
    assert stack.agent is not None
    config = stack.tmp / "once.yaml"
    config.write_text(yaml.safe_dump(stack.agent.config))
    return subprocess.run(
        [sys.executable, "-m", "agent", "once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=stack.agent.env,
    )


def held_by_once(stack: Stack) -> None:
    """While the agent is stopped, one ``tfs-agent once`` pass exits 3 and prints the hold's numbers."""
    done = once(stack)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "serving accuracy 0.85 ≥ 0.8 on golden generation" in done.stdout


def metrics(stack: Stack) -> str:
    code, body = stack.agent.get("/metrics")  # type: ignore[union-attr]
    assert code == 200
    return bytes(body).decode()


def evidence(stack: Stack) -> dict[str, Any]:
    return dict(stack.model().get("evidence") or {})
