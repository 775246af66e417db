"""The examples the README points at load as written."""

from __future__ import annotations

from pathlib import Path

from agent.core.golden import parse_golden
from agent.infra.config import load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_config_loads() -> None:
    """examples/agent.yaml is a valid config with the documented values."""
    settings = load_settings(EXAMPLES / "agent.yaml")
    assert settings.models[0].name == "half_plus_two"
    assert settings.models[0].policy.versions == "newer"


def test_example_golden_parses() -> None:
    """examples/golden.json is a valid golden file with expected outputs, labels and gates."""
    golden = parse_golden((EXAMPLES / "golden.json").read_bytes(), origin="examples/golden.json")
    assert golden.expected is not None
    assert set(golden.metrics) == {"mae", "rmse"}
