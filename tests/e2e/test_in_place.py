"""``validation: in_place`` with the real agent and TF Serving: one load per version, labels move after."""

from __future__ import annotations

import pytest

from testkit.savedmodels import build_half_plus_two
from testkit.stack import Stack

pytestmark = pytest.mark.slow


def _loads(stack: Stack, name: str, version: int) -> int:
    """How many times TF Serving loaded ``name`` ``version`` (its own log line per successful load)."""
    assert stack.server is not None
    log = stack.server.output_text()
    return log.count(f"Successfully loaded servable version {{name: {name} version: {version}}}")


def test_in_place_loads_each_version_once_and_never_labels_a_bad_one(stack: Stack) -> None:
    """v2 is loaded once (no m__candidate), validated by version and promoted; v3 (wrong answers) is unloaded
    and quarantined while every labelled request is answered by v2; 0 failed."""
    stack.config["models"][0]["validation"] = "in_place"
    stack.start()
    stack.publish(1)
    stack.wait_serving(1)
    load = stack.load(rate=50)
    stack.publish(2)
    stack.wait_serving(2)
    stack.publish(3, lambda base, version: build_half_plus_two(base, version, b=3.0))
    assert "validation" in stack.wait_quarantined(3)
    result = load.stop()
    assert result["failed"] == 0, result["errors"]
    assert load.versions() <= {1, 2}
    assert (_loads(stack, "m", 2), _loads(stack, "m__candidate", 2)) == (1, 0)
    assert _loads(stack, "m", 3) == 1
    assert _loads(stack, "m__candidate", 3) == 0
    assert stack.model()["serving"] == 2
