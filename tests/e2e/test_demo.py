"""`tfs-agent demo` — the README's first command — does what it says, as a real process."""

from __future__ import annotations

import subprocess
import sys

import pytest


def demo(*flags: str, timeout: float) -> str:
    """``tfs-agent demo FLAGS`` as a process: its output, after asserting that it exited 0."""
    done = subprocess.run(
        [sys.executable, "-m", "agent", "demo", *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_demo_promotes_good_rejects_bad_with_zero_failed_requests() -> None:
    """The demo exits 0 only if v2 went live with zero failed requests and v3 was rejected while v2 served."""
    out = demo("--rate", "50", timeout=240)
    assert "PASS" in out
    assert ", 0 failed;" in out
    assert "v3 rejected: validation" in out


@pytest.mark.slow
@pytest.mark.extended
def test_fleet_demo_rolls_pod_by_pod_and_stops_v3_at_the_canary() -> None:
    """`demo --replicas 3` exits 0 only if v2 reached every pod and v3 never left the canary; draws a PNG."""
    out = demo("--replicas", "3", timeout=480)
    assert "PASS: v2 rolled pod by pod; v3 stopped at the canary" in out
    served3 = next(line for line in out.splitlines() if "ever served v3" in line)
    assert served3.split("v3: ")[1].split(";")[0].count("pod-") == 1  # the canary alone
    assert "fleet.png" in out
