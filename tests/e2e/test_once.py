"""`tfs-agent once`: one pass against a running TF Serving, with an exit code that says what happened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agent.adapters.tfserving.config_file import initial_config
from agent.service.publish import publish
from testkit.agentproc import tfs_agent
from testkit.savedmodels import build_half_plus_two
from testkit.servers import start_server
from testkit.stack import GOLDEN, MODEL, SERVER_FLAGS

pytestmark = pytest.mark.slow


def test_once_exit_codes(tmp_path: Path) -> None:
    """0 after promoting, 4 after rejecting, 0 when idle, 3 when min_interval holds a candidate, 5 when TF
    Serving is unreachable."""
    volume = tmp_path / "models"
    volume.mkdir()
    config_file = volume / "models.config"
    initial_config(config_file, [])
    server = start_server(
        tmp_path, extra_flags=[f"--model_config_file={config_file}", *SERVER_FLAGS], rest=False
    )
    bucket = f"file://{tmp_path}/bucket/{MODEL}"
    (tmp_path / "golden.json").write_text(json.dumps(GOLDEN))
    agent_yaml = tmp_path / "agent.yaml"
    agent_yaml.write_text(
        yaml.safe_dump(
            {
                "serving": {
                    "address": server.grpc_address,
                    "model_config_file": str(config_file),
                    "load_timeout": "60s",
                    "rpc_timeout": "5s",
                },
                "state_dir": str(volume / ".tfs-agent"),
                "models": [
                    {
                        "name": MODEL,
                        "source": bucket,
                        "local_path": str(volume / MODEL),
                        "golden": str(tmp_path / "golden.json"),
                        "policy": {"bake_time": "0s"},
                    }
                ],
            }
        )
    )

    def once() -> tuple[int, dict[str, object]]:
        done = tfs_agent("once", "--config", str(agent_yaml), "--json")
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        return done.returncode, (lines[0] if lines else {"stderr": done.stderr})

    try:
        publish(build_half_plus_two(tmp_path / "build", 1), bucket, 1, progress=False, model=MODEL)
        assert once() == (
            0,
            {"model": MODEL, "outcome": "promoted", "version": 1, "detail": "serving 1 (was None)"},
        )
        publish(build_half_plus_two(tmp_path / "build", 2, b=3.0), bucket, 2, progress=False, model=MODEL)
        code, line = once()
        assert (code, line["outcome"], line["version"]) == (4, "rejected", 2)
        code, line = once()
        assert (code, line["outcome"]) == (0, "idle")
        config = yaml.safe_load(agent_yaml.read_text())
        config["models"][0]["policy"]["min_interval"] = "1h"
        agent_yaml.write_text(yaml.safe_dump(config))
        publish(build_half_plus_two(tmp_path / "build", 3), bucket, 3, progress=False, model=MODEL)
        code, line = once()
        assert (code, line["outcome"], line["version"]) == (3, "waiting", 3)
        assert "min_interval" in str(line["detail"])
    finally:
        server.stop()
    code, line = once()
    assert (code, line["outcome"]) == (5, "retry")
