"""`tfs-agent demo` — the README's first command — does what it says, as a real process."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_promotes_good_rejects_bad_with_zero_failed_requests() -> None:
    """The demo exits 0 only if v2 went live with zero failed requests and v3 was rejected while v2 served."""
    done = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--rate", "50"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout
    assert ", 0 failed;" in done.stdout
    assert "v3 rejected: validation" in done.stdout


@pytest.mark.slow
def test_fleet_demo_rolls_pod_by_pod_and_stops_v3_at_the_canary() -> None:
    """`demo --replicas 3` exits 0 only if v2 reached every pod and v3 never left the canary; draws a PNG."""
    done = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--replicas", "3"],
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: v2 rolled pod by pod; v3 stopped at the canary" in done.stdout
    served3 = next(line for line in done.stdout.splitlines() if "ever served v3" in line)
    assert served3.split("v3: ")[1].split(";")[0].count("pod-") == 1  # the canary alone
    assert "fleet.png" in done.stdout
