"""CI runs what a contributor runs: `.ci/run` calls `make test`, which runs every check before the suite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("ruff check", "ruff format --check", "mypy --strict", "lint-imports", "pytest -W error")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_runs_every_check_then_the_suite() -> None:
    """`make -n test` lists ruff, ruff format, mypy --strict and import-linter, in order, before pytest."""
    plan = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    positions = [plan.find(check) for check in CHECKS]
    assert -1 not in positions, plan
    assert positions == sorted(positions), plan


def test_ci_entry_point_runs_make_test() -> None:
    """`.ci/run` ends by running `make test`, so every check above blocks a merge."""
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [ln for ln in lines if ln and not ln.startswith("#")]
    assert commands[-1] == "make test"
