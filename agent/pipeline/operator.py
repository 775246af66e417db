"""Operator actions on one model (pin, unpin, clear a quarantine, roll back), behind the admin API.

A mixin of ModelReconciler: each action takes the model's lock, so it never interleaves with a pass.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from agent.core.errors import AgentError
from agent.infra.config import ModelSettings
from agent.infra.logs import event
from agent.infra.state import StateStore
from agent.pipeline.promote import Promoter
from agent.pipeline.staging import verify_local

log = logging.getLogger("tfs_agent.reconciler")


class OperatorActions:
    """What ``tfs-agent pin/unpin/clear/rollback`` do to one model."""

    name: str
    settings: ModelSettings
    state: StateStore
    lock: threading.RLock
    promoter: Promoter

    def _after_rollback(self, bad: int, good: int | None, reason: str, why: str) -> None:
        raise NotImplementedError

    def pin(self, version: int) -> dict[str, Any]:
        with self.lock, self.state.update(self.name) as record:
            record.pinned = version
        event(log, "pinned", model=self.name, version=version)
        return {"model": self.name, "pinned": version}

    def unpin(self) -> dict[str, Any]:
        with self.lock, self.state.update(self.name) as record:
            record.pinned = None
        event(log, "unpinned", model=self.name)
        return {"model": self.name, "pinned": None}

    def clear(self, version: int) -> dict[str, Any]:
        with self.lock, self.state.update(self.name) as record:
            reason = record.quarantined.pop(version, None)
        if reason is None:
            raise AgentError(f"version {version} of {self.name} is not quarantined")
        event(log, "quarantine cleared", model=self.name, version=version)
        return {"model": self.name, "cleared": version}

    def rollback(self) -> dict[str, Any]:
        """Operator rollback: back to the previous validated version; the current one is quarantined."""
        with self.lock:
            record = self.state.get(self.name)
            bad, good = record.serving, record.previous
            if bad is None or good is None:
                raise AgentError(f"{self.name} has no previous version to roll back to (serving {bad})")
            if not verify_local(self.settings.local_path, good):
                raise AgentError(f"previous version {good} of {self.name} is no longer intact on disk")
            self.promoter.roll_back(bad, good)
            self._after_rollback(bad, good, "operator rollback", "operator")
            event(log, "rolled back by operator", model=self.name, version=good, quarantined=bad)
            return {"model": self.name, "serving": good, "quarantined": bad}
