"""The volume preflight with the agent as a process: a version that does not fit under
serving.local_volume_limit is refused before any byte is written — a counted retry with its reason in
/status, not a quarantine — and raising the limit lets it through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testkit.poll import poll_until
from testkit.savedmodels import build_half_plus_two
from testkit.stack import MODEL, Stack

pytestmark = pytest.mark.slow


def big(base: Path, version: int, **kw: Any) -> Path:
    return build_half_plus_two(base, version, weight_mb=3, **kw)  # a 3 MiB variable: > the 2Mi limit


def test_a_version_over_the_volume_limit_is_refused_before_any_byte_is_written(stack: Stack) -> None:
    """With local_volume_limit 2Mi a 3 MiB version never gets a staging dir, downloads 0 bytes, fails passes
    (counted) with a reason naming the fix in /status, is not quarantined; at 64Mi it is promoted."""
    stack.config["serving"]["local_volume_limit"] = "2Mi"
    stack.start()
    assert stack.agent is not None
    local = stack.volume / MODEL
    stack.publish(1, big)
    seen: set[str] = set()

    def refused_twice() -> Any:
        seen.update(p.name for p in local.iterdir())
        errors = stack.agent.metric(  # type: ignore[union-attr]
            "tfs_agent_errors_total", model=MODEL, stage="download", error="DiskSpaceError"
        )
        return (errors or 0) >= 2 and stack.model()

    model = poll_until(refused_twice, timeout=60, interval=0.1, what="two refused passes")
    assert seen == set(), f"something was written to {local}: {seen}"
    assert "serving.local_volume_limit 2.0 MiB" in model["last_error"], model
    assert "lower keep_versions, or raise the models emptyDir's sizeLimit" in model["last_error"]
    assert model["quarantined"] == {}
    assert model["serving"] is None
    assert stack.agent.metric("tfs_agent_downloaded_bytes_total", model=MODEL) == 0

    stack.config["serving"]["local_volume_limit"] = "64Mi"
    stack.restart_agent(kill=False)
    stack.wait_serving(1)
    assert (stack.agent.metric("tfs_agent_downloaded_bytes_total", model=MODEL) or 0) > 3 * 2**20
