"""The signature gate with the agent as a process and real SavedModels in TF Serving: a renamed input is
rejected naming it, an added output passes, and ``policy.signature_change: allow`` lets a rename through."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.savedmodels import build_half_plus_two
from testkit.stack import GOLDEN, Stack

pytestmark = pytest.mark.slow


def renamed(base: Path, version: int, **kw: Any) -> Path:
    return build_half_plus_two(base, version, input_name="features", **kw)


def test_renamed_input_is_rejected_an_added_output_passes_and_allow_lets_a_break_through(
    stack: Stack, tmp_path: Path
) -> None:
    """v2 renames input x (rejected, the reason names x and features; v1 keeps serving); v3 adds an output
    (promoted); after a restart with signature_change allow, v4's rename is promoted."""
    # With an added output the golden file must say which output "expected" is about.
    (tmp_path / "golden.json").write_text(json.dumps({**GOLDEN, "output": "y"}))
    stack.start()
    stack.publish(1)
    stack.wait_serving(1)
    stack.publish(2, renamed)
    reason = stack.wait_quarantined(2)
    assert "signature serving_default: input 'x' removed (inputs now: 'features')" in reason, reason
    assert reason.startswith("validation: signatures:"), reason
    assert stack.model()["serving"] == 1
    stack.publish(3, build_half_plus_two, extra_output=True)
    checks = stack.wait_serving(3)["last_verdict"]["checks"]
    assert {"name": "signatures", "ok": True, "detail": "compatible with version 1"} in checks

    stack.config["models"][0]["policy"]["signature_change"] = "allow"
    stack.restart_agent(kill=False)
    stack.publish(4, renamed, extra_output=True)
    gate = [c for c in stack.wait_serving(4)["last_verdict"]["checks"] if c["name"] == "signatures"]
    assert gate[0]["ok"], gate
    assert "allowed by policy.signature_change" in gate[0]["detail"]
    assert "input 'x' removed" in gate[0]["detail"]
