"""`tfs-agent once` as a process, on configs no retry can fix: exit 2 (bad usage or config) with an error that
names the bad value, and exit 1 with a clean `Error:` (no traceback) for an unreadable state file. Nothing
here needs TF Serving: these are refused before the pass begins."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.agentproc import tfs_agent


def _config(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "bucket" / "m").mkdir(parents=True, exist_ok=True)
    (tmp_path / "golden.json").write_text(json.dumps({"instances": [1.0], "expected": [2.5]}))
    return {
        "serving": {"address": "127.0.0.1:1", "model_config_file": str(tmp_path / "models.config")},
        "state_dir": str(tmp_path / "state"),
        "models": [
            {
                "name": "m",
                "source": f"file://{tmp_path}/bucket/m",
                "local_path": str(tmp_path / "models" / "m"),
                "golden": str(tmp_path / "golden.json"),
            }
        ],
    }


def _unknown_key(tmp_path: Path, config: dict[str, Any]) -> str:
    config["models"][0]["polcy"] = {}
    return "polcy"


def _missing_file(tmp_path: Path, config: dict[str, Any]) -> str:
    return "cannot read config file"  # the config is never written


def _bad_yaml(tmp_path: Path, config: dict[str, Any]) -> str:
    return "not valid YAML"  # written as a broken document below


def _missing_golden(tmp_path: Path, config: dict[str, Any]) -> str:
    config["models"][0]["golden"] = str(tmp_path / "nope.json")
    return "nope.json"


def _invalid_golden(tmp_path: Path, config: dict[str, Any]) -> str:
    (tmp_path / "golden.json").write_text('{"instances": [1.0], "expectd": [2.5]}')
    return "expectd"


def _missing_source(tmp_path: Path, config: dict[str, Any]) -> str:
    config["models"][0]["source"] = f"file://{tmp_path}/no-such-bucket/m"
    return "no-such-bucket"


@pytest.mark.parametrize(
    "breakage",
    [_unknown_key, _missing_file, _bad_yaml, _missing_golden, _invalid_golden, _missing_source],
    ids=lambda f: f.__name__.strip("_"),
)
def test_once_exits_2_on_a_config_no_retry_can_fix(
    tmp_path: Path, breakage: Callable[[Path, dict[str, Any]], str]
) -> None:
    """Unknown key, missing or broken config file, missing or invalid golden file, missing source: exit 2,
    and the message names what is wrong."""
    config = _config(tmp_path)
    needle = breakage(tmp_path, config)
    path = tmp_path / "agent.yaml"
    if breakage is _bad_yaml:
        path.write_text("models: [unclosed\n")
    elif breakage is not _missing_file:
        path.write_text(yaml.safe_dump(config))
    done = tfs_agent("once", "--config", str(path))
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "models.config").exists()  # changes nothing


def test_once_exits_1_with_a_clean_error_on_a_corrupt_state_file(tmp_path: Path) -> None:
    """An unreadable state file: exit 1 with `Error:` naming the file and the fix, as `run` does."""
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path)))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.json").write_text("{not json")
    done = tfs_agent("once", "--config", str(path))
    assert done.returncode == 1, done.stderr
    assert "Error: state file" in done.stderr
    assert "move it aside" in done.stderr
    assert "Traceback" not in done.stderr
