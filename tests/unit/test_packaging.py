"""What the agent's wheel carries: the agent's packages, never the test kit, the tests or the benchmarks."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_the_agent_and_not_the_test_kit() -> None:
    """The package list from pyproject.toml holds the agent: testkit, tests and benchmarks stay out."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = find_packages(where=str(ROOT), include=include)
    assert "agent" in shipped
    assert "agent.pipeline" in shipped
    assert not [p for p in shipped if p.split(".")[0] in ("testkit", "tests", "benchmarks")], shipped
