"""The issue's must-have: swapping a model from version 1 to 2 by ReloadConfig while another process sends
Predicts continuously gives zero failed requests (B5, B13, B16, B17).

Runs against the devserver, or the stock binary with TFS_BINARY set.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tensorflow_serving.apis import predict_pb2

from testkit.poll import poll_until
from testkit.savedmodels import build_half_plus_two
from testkit.servers import REPO_ROOT, ServerHandle, model_config, model_config_list, predict_request
from tests.devserver.load_client import write_requests


class LoadClient:
    """tests.devserver.load_client in its own process."""

    def __init__(self, server: ServerHandle, workdir: Path, requests: list[Any]) -> None:
        workdir.mkdir()
        self.workdir = workdir
        write_requests(workdir / "requests.bin", [r.SerializeToString() for r in requests])
        files = {name: workdir / name for name in ("stop", "progress.json", "summary.json")}
        self.stop_file, self.progress, self.summary = (
            files["stop"],
            files["progress.json"],
            files["summary.json"],
        )
        command = [sys.executable, "-m", "tests.devserver.load_client", "--address", server.grpc_address]
        command += ["--requests", str(workdir / "requests.bin"), "--stop", str(self.stop_file)]
        command += ["--progress", str(self.progress), "--summary", str(self.summary)]
        self.process = subprocess.Popen(command, cwd=REPO_ROOT)

    def sent(self) -> int:
        """Requests sent so far (updated every 25)."""
        return int(json.loads(self.progress.read_text())["sent"]) if self.progress.exists() else 0

    def wait_for_more(self, count: int) -> None:
        """Wait until ``count`` more requests have been sent."""
        target = self.sent() + count
        poll_until(lambda: self.sent() >= target, timeout=60, what=f"{count} more requests")

    def finish(self) -> dict[str, Any]:
        """Stop the client and return its summary."""
        self.stop_file.touch()
        assert self.process.wait(timeout=60) == 0
        summary: dict[str, Any] = json.loads(self.summary.read_text())
        return summary


def _versions_served(summary: dict[str, Any]) -> set[int]:
    versions = set()
    for payload in summary["responses"]:
        response = predict_pb2.PredictResponse.FromString(base64.b64decode(payload))
        versions.add(response.model_spec.version.value)
    return versions


def test_swap_under_load_has_no_failed_requests(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B5/B13/B17: swaps by policy (latest) and by label (two-step) under continuous load fail no request."""
    base = tmp_path / "swap"
    build_half_plus_two(base, 1, a=1.0)
    build_half_plus_two(base, 2, a=2.0)
    reload = shared_server.reload
    reload(model_config_list(model_config("swap", base, versions=[1])))
    reload(model_config_list(model_config("swap", base, versions=[1], labels={"stable": 1})))
    requests = [predict_request("swap", [1.0]), predict_request("swap", [1.0], label="stable")]
    client = LoadClient(shared_server, tmp_path / "client", requests)
    try:
        client.wait_for_more(50)
        # Step 1: serve both, labels unchanged; "latest" moves to 2 once it is AVAILABLE.
        reload(model_config_list(model_config("swap", base, versions=[1, 2], labels={"stable": 1})))
        shared_server.wait_for_state("swap", 2, "AVAILABLE")
        client.wait_for_more(50)
        # Step 2: move the label, drop version 1 (it drains, then unloads).
        reload(model_config_list(model_config("swap", base, versions=[2], labels={"stable": 2})))
        shared_server.wait_for_state("swap", 1, "END")
        client.wait_for_more(50)
    finally:
        summary = client.finish()
    assert summary["failed"] == 0, summary["failures"]
    assert summary["ok"] >= 150
    assert _versions_served(summary) == {1, 2}


def test_one_step_swap_under_load_has_no_failed_requests(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B5/B17: replacing version 1 by 2 in one ReloadConfig (specific {1} -> {2}) fails no request."""
    base = tmp_path / "swap1"
    build_half_plus_two(base, 1, a=1.0)
    build_half_plus_two(base, 2, a=2.0)
    shared_server.reload(model_config_list(model_config("swap1", base, versions=[1])))
    client = LoadClient(shared_server, tmp_path / "client", [predict_request("swap1", [1.0])])
    try:
        client.wait_for_more(50)
        shared_server.reload(model_config_list(model_config("swap1", base, versions=[2])))
        shared_server.wait_for_state("swap1", 1, "END")
        client.wait_for_more(50)
    finally:
        summary = client.finish()
    assert summary["failed"] == 0, summary["failures"]
    assert _versions_served(summary) == {1, 2}
