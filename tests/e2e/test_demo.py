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
