"""Progress of a long download, for the log: a multi-GB version must not be a silent pass."""

from __future__ import annotations

import logging
import threading

from agent.core.domain import Manifest
from agent.infra.clock import Clock
from agent.infra.logs import event

log = logging.getLogger("tfs_agent.reconciler")


class DownloadProgress:
    """Logs a long download's progress at most every ``every`` seconds (called from download threads)."""

    def __init__(self, model: str, manifest: Manifest, clock: Clock, every: float = 10.0) -> None:
        self.model, self.version, self.total = model, manifest.version, max(manifest.total_bytes, 1)
        self.clock, self.every = clock, every
        self.done = 0
        self.files = 0
        self.count = len(manifest.files)
        self.next_at = clock.monotonic() + every
        self.lock = threading.Lock()

    def __call__(self, path: str, size: int) -> None:
        with self.lock:
            self.done += size
            self.files += 1
            now = self.clock.monotonic()
            if now < self.next_at or self.files == self.count:
                return
            self.next_at = now + self.every
            percent = round(100 * self.done / self.total)
        event(
            log,
            "downloading",
            model=self.model,
            version=self.version,
            percent=percent,
            files=f"{self.files}/{self.count}",
            bytes=self.done,
        )
