"""Operator actions on one model (pin, unpin, clear a quarantine, roll back), behind the admin API.

Composed into ModelReconciler, not mixed in: it gets the model's lock (so an action never interleaves with a
pass), the state, the promotion and the reporter, and nothing else.
"""

from __future__ import annotations

import threading
from typing import Any

from agent.core.errors import AgentError
from agent.infra.config import ModelSettings
from agent.infra.state import StateStore
from agent.pipeline.discovery import Discovery
from agent.pipeline.promotion import Promotion
from agent.pipeline.report import Reporter
from agent.pipeline.staging import verify_local


class Operator:
    """What ``tfs-agent pin/unpin/clear/rollback`` do to one model."""

    def __init__(
        self,
        settings: ModelSettings,
        *,
        lock: threading.RLock,
        state: StateStore,
        promotion: Promotion,
        reporter: Reporter,
        discovery: Discovery,
    ) -> None:
        self.name = settings.name
        self.local_path = settings.local_path
        self.lock = lock
        self.state = state
        self.promotion = promotion
        self.reporter = reporter
        self.discovery = discovery

    def pin(self, version: int) -> dict[str, Any]:
        with self.lock, self.state.update(self.name) as record:
            record.pinned = version
        self.reporter.operator("pinned", version)
        return {"model": self.name, "pinned": version}

    def unpin(self) -> dict[str, Any]:
        with self.lock, self.state.update(self.name) as record:
            record.pinned = None
        self.reporter.operator("unpinned")
        return {"model": self.name, "pinned": None}

    def clear(self, version: int) -> dict[str, Any]:
        with self.lock, self.state.update(self.name) as record:
            reason = record.quarantined.pop(version, None)
        if reason is None:
            raise AgentError(f"version {version} of {self.name} is not quarantined")
        self.discovery.forget(version)  # fixed in place (e.g. publish --force): judge it afresh
        self.reporter.operator("quarantine cleared", version)
        self.reporter.quarantined(len(self.state.get(self.name).quarantined))
        return {"model": self.name, "cleared": version}

    def rollback(self) -> dict[str, Any]:
        """Operator rollback: back to the previous validated version; the current one is quarantined."""
        with self.lock:
            record = self.state.get(self.name)
            bad, good = record.serving, record.previous
            if bad is None or good is None:
                raise AgentError(f"{self.name} has no previous version to roll back to (serving {bad})")
            if not verify_local(self.local_path, good):
                raise AgentError(f"previous version {good} of {self.name} is no longer intact on disk")
            self.promotion.roll_back(bad, good, "operator rollback")
            self.reporter.rolled_back(bad, good, "operator")
            self.reporter.quarantined(len(self.state.get(self.name).quarantined))
            return {"model": self.name, "serving": good, "quarantined": bad}
