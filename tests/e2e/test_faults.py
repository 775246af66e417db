"""The fault matrix, one trial of each fault (``python -m benchmarks.faults --trials N`` is the long run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.faults import FAULTS, goals, run, table

pytestmark = pytest.mark.slow


@pytest.mark.timeout(420)
def test_every_fault_once_under_load(tmp_path: Path) -> None:
    """Each fault injected once under client load: no request fails, only promoted versions answer, and the
    agent converges on the expected version after every fault."""
    lines: list[str] = []
    report = run(tmp_path, trials=1, rate=30, log=lines.append)
    shown = table(report) + "\n" + "\n".join(lines)
    assert report["totals"]["injections"] + report["totals"]["missed"] == len(FAULTS), shown
    assert goals(report) == [], shown
    skipped = [r["fault"] for r in report["rows"] if r["injections"] == 0]
    assert skipped in ([], ["disk_full"], ["agent_kill_switch"], ["agent_kill_switch", "disk_full"]), shown
