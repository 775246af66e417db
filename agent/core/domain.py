"""Plain values shared by every layer: what a version is, what TF Serving reports, what a pass decided.

Frozen dataclasses only, no I/O: the planner is a pure function of these, and tests build them directly.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

MANIFEST_NAME = "tfs-agent-manifest.json"
"""Lives inside the version directory (``<base>/<N>/tfs-agent-manifest.json``) and is written last."""

MANIFEST_FORMAT = 1


def _frozen(mapping: Mapping[str, float] | None) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: its path relative to the version directory, size in bytes, crc32c (base64)."""

    path: str
    size: int
    crc32c: str


@dataclass(frozen=True)
class Manifest:
    """The completion record of a version: it exists only once every file listed here was uploaded."""

    model: str
    version: int
    files: tuple[FileEntry, ...]
    created: str = ""
    creator: str = ""
    metrics: Mapping[str, float] = field(default_factory=lambda: _frozen(None))

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


class VersionState(enum.IntEnum):
    """TF Serving's ModelVersionStatus.State values (docs/tfserving-behaviour.md#b14)."""

    UNKNOWN = 0
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass(frozen=True)
class VersionStatus:
    """One row of GetModelStatus: a version, its state and, for END after a failure, the error text."""

    version: int
    state: VersionState
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.state is VersionState.END and bool(self.error)


@dataclass(frozen=True)
class ServedModel:
    """One ``config { ... }`` entry of the ModelServerConfig the agent owns."""

    name: str
    base_path: str
    versions: tuple[int, ...]
    labels: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one validation check: its name, pass/fail and a human-readable detail."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """What validation concluded about a candidate version."""

    version: int
    ok: bool
    checks: tuple[CheckResult, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=lambda: _frozen(None))
    champion_metrics: Mapping[str, float] = field(default_factory=lambda: _frozen(None))

    @property
    def reason(self) -> str:
        failed = [f"{c.name}: {c.detail}" if c.detail else c.name for c in self.checks if not c.ok]
        return "; ".join(failed) if failed else "ok"

    def to_json(self) -> dict[str, Any]:
        """As recorded in the state file's ``last_verdict`` (and shown by /status)."""
        return {
            "version": self.version,
            "ok": self.ok,
            "reason": self.reason,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "metrics": dict(self.metrics),
            "champion_metrics": dict(self.champion_metrics),
        }
