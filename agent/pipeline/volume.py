"""How full the models volume is, counted the way the kubelet counts an emptyDir with a ``sizeLimit``.

The kubelet evicts the whole pod once the emptyDir holds more than its ``sizeLimit`` — every replica at once,
since all stage the same version — and ``shutil.disk_usage`` on it reports the node's disk instead. So the
preflight before a download adds up what the agent's directories hold, plus the candidate, against
``serving.local_volume_limit`` (ADR 17): too big is a DiskSpaceError, a counted retry, not a quarantine,
because a bigger volume fixes it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from stat import S_ISDIR, S_ISREG

from agent.core.domain import Manifest
from agent.core.errors import DiskSpaceError

VOLUME_HEADROOM_BYTES = 1024 * 1024
"""Kept free under ``local_volume_limit`` beyond the version: the warmup records, state and config files the
agent writes onto the same volume after staging (kilobytes for typical golden files)."""


class VolumeLimit:
    """The size limit of the volume every model stages onto (the emptyDir's ``sizeLimit``, which the kubelet
    enforces by evicting the pod) and the directories on it the agent fills.

    ``shutil.disk_usage`` sees the node's disk, not the emptyDir, so the preflight adds up what these
    directories hold instead. One instance is shared by every model: a download in flight counts with its
    whole size until it ends, so two models starting at once cannot both take the last free bytes."""

    def __init__(self, limit: int, paths: Collection[Path]) -> None:
        self.limit = limit
        self.paths = tuple(_outermost(paths))
        self._lock = threading.Lock()
        self._reserved: dict[object, int] = {}

    @contextmanager
    def reserve(self, manifest: Manifest, where: Path) -> Iterator[None]:
        """Refuse (DiskSpaceError) unless the version fits beside what is on the volume and in flight; hold
        its size while the body runs."""
        with self._lock:
            used = volume_usage(self.paths)
            in_flight = sum(self._reserved.values())
            if used + in_flight + manifest.total_bytes + VOLUME_HEADROOM_BYTES > self.limit:
                raise DiskSpaceError(self._refusal(manifest, where, used, in_flight))
            token = object()
            self._reserved[token] = manifest.total_bytes
        try:
            yield
        finally:
            with self._lock:
                self._reserved.pop(token, None)

    def _refusal(self, manifest: Manifest, where: Path, used: int, in_flight: int) -> str:
        busy = f" plus {mib(in_flight)} being downloaded" if in_flight else ""
        return (
            f"{where}: version {manifest.version} needs {mib(manifest.total_bytes)} but the volume already "
            f"holds {mib(used)}{busy} of serving.local_volume_limit {mib(self.limit)} (with "
            f"{mib(VOLUME_HEADROOM_BYTES)} headroom); lower keep_versions, or raise the models emptyDir's "
            "sizeLimit and serving.local_volume_limit together"
        )


def volume_usage(paths: Collection[Path]) -> int:
    """Bytes allocated under ``paths`` (files and directories, staging and half-removed ones included), as
    the kubelet counts an emptyDir; symlinks are not followed, a missing path holds nothing."""
    total = 0
    stack = [Path(p) for p in paths]
    while stack:
        try:
            st = stack[-1].lstat()
        except FileNotFoundError:
            stack.pop()
            continue
        path = stack.pop()
        total += max(st.st_blocks * 512, st.st_size if S_ISREG(st.st_mode) else 0)
        if S_ISDIR(st.st_mode):
            with suppress(FileNotFoundError):
                stack.extend(path.iterdir())
    return total


def _outermost(paths: Collection[Path]) -> list[Path]:
    """The paths that are not inside another one (so nothing is counted twice)."""
    unique = sorted({Path(p) for p in paths})
    return [p for p in unique if not any(p != q and p.is_relative_to(q) for q in unique)]


def mib(size: int) -> str:
    """A byte count for people."""
    return f"{size / 2**20:.1f} MiB"
