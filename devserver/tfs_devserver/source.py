"""The file-system storage-path source: which versions of each model should be served (B3, B4, B7).

Why its rules matter: versions are the children of ``base_path`` whose names parse as a signed 64-bit integer
(``007`` is 7; files count too), chosen by the version policy; a config change to an existing model applies
only at the next poll, while a removed model is un-aspired at once. One unreadable or missing base path fails
the whole poll, so no model gets updated that round (the stock behaviour behind "stalls polling for all
models"). With a poll interval of 0 the file system is read once; negative, never.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from tfs_devserver.status import ServingError, invalid_argument

log = logging.getLogger("tensorflow_serving.sources.storage_path.file_system_storage_path_source")

# ModelConfig.model_version_policy (ServableVersionPolicy proto); protos are untyped here.
VersionPolicy: TypeAlias = Any
Emit = Callable[[str, dict[int, str]], None]
_INT = re.compile(r"^\s*[+-]?[0-9]+\s*$")  # absl::SimpleAtoi
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class ServableToMonitor:
    """One model as the source sees it."""

    name: str
    base_path: str
    policy: VersionPolicy


def parse_version(child: str) -> int | None:
    """A child name's version number, or None if it is not a signed 64-bit integer."""
    if not _INT.match(child):
        return None
    value = int(child.strip())
    return value if _INT64[0] <= value <= _INT64[1] else None


def _children_by_version(base_path: str) -> dict[int, str]:
    by_version: dict[int, str] = {}
    for child in sorted({c.split("/", 1)[0] for c in os.listdir(base_path)}):
        version = parse_version(child)
        if version is not None:
            by_version[version] = os.path.join(base_path, child)
    return by_version


def _select(servable: ServableToMonitor, by_version: dict[int, str]) -> dict[int, str]:
    choice = servable.policy.WhichOneof("policy_choice")
    if choice == "all":
        return dict(by_version)
    if choice == "specific":
        wanted = set(servable.policy.specific.versions)
        for missing in sorted(wanted - set(by_version)):
            log.warning(
                "Version %d of servable %s, which was requested to be served as a 'specific' version in the "
                "servable's version policy, was not found in the file system",
                missing,
                servable.name,
            )
        return {v: p for v, p in by_version.items() if v in wanted}
    keep = max(servable.policy.latest.num_versions, 1)
    return {v: by_version[v] for v in sorted(by_version, reverse=True)[:keep]}


def aspired_versions(servable: ServableToMonitor) -> dict[int, str]:
    """Poll one model's base path; INVALID_ARGUMENT if it does not exist."""
    if not os.path.exists(servable.base_path):
        raise invalid_argument(f"Could not find base path {servable.base_path} for servable {servable.name}")
    try:
        chosen = _select(servable, _children_by_version(servable.base_path))
    except OSError as exc:
        raise invalid_argument(f"{servable.base_path}: {exc.strerror or exc}") from exc
    if not chosen:
        log.warning(
            "No versions of servable %s found under base path %s. Did you forget to name your leaf directory "
            "as a number (eg. '/1/')?",
            servable.name,
            servable.base_path,
        )
    return chosen


class FileSystemSource:
    """Polls every configured base path and hands aspired versions to the manager."""

    def __init__(self, *, emit: Emit, poll_wait_seconds: int) -> None:
        self._emit = emit
        self._poll_wait = poll_wait_seconds
        self._lock = threading.Lock()
        self._servables: dict[str, ServableToMonitor] = {}
        self._stop = threading.Event()
        self._started = False

    def names(self) -> set[str]:
        """Models currently configured."""
        with self._lock:
            return set(self._servables)

    def update_config(self, servables: list[ServableToMonitor]) -> None:
        """Replace the watched models; removed ones are un-aspired now, the rest change at the next poll."""
        with self._lock:
            for name in sorted(set(self._servables) - {s.name for s in servables}):
                self._emit(name, {})
            self._servables = {s.name: s for s in servables}

    def start(self) -> None:
        """First poll now (unless the interval is negative), then periodically if it is positive."""
        if self._started:
            return
        self._started = True
        if self._poll_wait >= 0:
            self.poll_once()
        if self._poll_wait > 0:
            threading.Thread(target=self._run, name="fs-source", daemon=True).start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._poll_wait):
            self.poll_once()

    def poll_once(self) -> bool:
        """One poll of every model; on any error nothing is emitted (returns False)."""
        with self._lock:
            try:
                found = {s.name: aspired_versions(s) for s in self._servables.values()}
            except ServingError as exc:
                log.error(
                    "FileSystemStoragePathSource encountered a filesystem access error: %s", exc.message
                )
                return False
            for name, versions in found.items():
                self._emit(name, versions)
        return True
