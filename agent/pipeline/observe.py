"""What a pass sees before it decides: the planner's observation and a version's state in TF Serving.

Both are read-only: the bucket's complete versions, the state record, the volume (sizes only) and TF
Serving's GetModelStatus go in; plain values come out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from agent.adapters.tfserving.base import ServingControl
from agent.core.domain import Manifest, VersionState
from agent.core.evidence import Evidence
from agent.core.plan import Observation
from agent.infra.clock import utc
from agent.infra.state import ModelRecord
from agent.pipeline.staging import check_local


def observe(
    record: ModelRecord, complete: Mapping[int, Manifest], local_path: Path, evidence: Evidence
) -> Observation:
    """The planner's input: the bucket's complete versions, plus the pinned one if it is intact on disk, and
    this pass's evidence for the performance policy.

    The bucket alone says what is available: a version deleted there is gone, so ``versions: latest``
    follows a bucket-side rollback. Only an operator's pin may come from the disk (an older version kept
    for rollback). Sizes only (no file contents read): this runs every pass; staging re-checks checksums."""
    pin = record.pinned
    local = {pin} if pin is not None and check_local(local_path, pin, checksums=False) is None else set()
    return Observation(
        available=frozenset(complete) | frozenset(local),
        serving=record.serving,
        quarantined=record.quarantined,
        pinned=record.pinned,
        last_promotion=utc(record.last_promotion) if record.last_promotion else None,
        evidence=evidence,
    )


def state_of(serving: ServingControl, model: str, version: int) -> VersionState | None:
    """The version's state in TF Serving (None: not listed)."""
    return {s.version: s.state for s in serving.status(model)}.get(version)
