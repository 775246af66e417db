"""An in-memory bucket implementing ``ModelSource``, with call counts and scripted faults.

Shared by the discovery, staging and reconciler tests: it behaves like the real adapters (404 is
``ObjectNotFoundError``, listings carry crc32c and update times, downloads stream to a file and return the
crc32c of what was written) so a test that passes here exercises the same contract as gs:// and file://.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from agent.adapters.sources.base import ObjectInfo, ObjectNotFoundError
from agent.adapters.sources.streams import crc32c_of_bytes
from agent.core.domain import MANIFEST_NAME, FileEntry, Manifest
from agent.core.errors import AgentError
from agent.core.manifest import serialize_manifest
from agent.infra.clock import ManualClock

__all__ = ["InMemorySource", "manifest_for"]


def manifest_for(model: str, version: int, files: Mapping[str, bytes]) -> Manifest:
    """The manifest ``tfs-agent publish`` would write for these file contents."""
    entries = tuple(FileEntry(p, len(data), crc32c_of_bytes(data)) for p, data in sorted(files.items()))
    return Manifest(model=model, version=version, files=entries, created="2024-01-01T00:00:00+00:00")


class InMemorySource:
    """A ``ModelSource`` over a dict; ``uri`` ends with the model folder name like a real prefix."""

    def __init__(self, uri: str = "mem://bucket/model", clock: ManualClock | None = None) -> None:
        self.uri = uri
        self.clock = clock or ManualClock()
        self.objects: dict[tuple[int, str], tuple[bytes, float]] = {}
        self.calls: Counter[str] = Counter()
        self.calls_by_name: Counter[tuple[str, str]] = Counter()
        self.faults: dict[tuple[str, str], list[Exception]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.corrupt_downloads: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # ---- arranging the bucket ----

    def put(self, version: int, name: str, data: bytes) -> None:
        self.objects[(version, name)] = (data, self.clock.time())

    def publish(self, version: int, files: Mapping[str, bytes], *, model: str = "model") -> Manifest:
        """Files first, manifest last, as ``tfs-agent publish`` does."""
        for name, data in files.items():
            self.put(version, name, data)
        manifest = manifest_for(model, version, files)
        self.put(version, MANIFEST_NAME, serialize_manifest(manifest))
        return manifest

    def remove_version(self, version: int) -> None:
        for key in [k for k in self.objects if k[0] == version]:
            del self.objects[key]

    def fail(self, method: str, name: str, *errors: Exception) -> None:
        """The next calls of ``method`` (download, read_bytes, list_objects) on ``name`` raise these."""
        self.faults.setdefault((method, name), []).extend(errors)

    # ---- ModelSource ----

    def list_versions(self) -> frozenset[int]:
        self._count("list_versions", "")
        return frozenset(v for v, _ in self.objects)

    def list_objects(self, version: int) -> tuple[ObjectInfo, ...]:
        self._count("list_objects", str(version))
        return tuple(
            ObjectInfo(name, len(data), crc32c_of_bytes(data), updated)
            for (v, name), (data, updated) in sorted(self.objects.items())
            if v == version
        )

    def read_bytes(self, version: int, name: str) -> bytes:
        self._count("read_bytes", name)
        return self._get(version, name)

    def download(self, version: int, name: str, dest: Path) -> str:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._count("download", name)
            data = self.corrupt_downloads.get(name, self._get(version, name))
            dest.write_bytes(data)
            return crc32c_of_bytes(data)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _get(self, version: int, name: str) -> bytes:
        try:
            return self.objects[(version, name)][0]
        except KeyError:
            raise ObjectNotFoundError(f"{self.uri}/{version}/{name}: not found") from None

    def _count(self, method: str, name: str) -> None:
        with self._lock:
            self.calls[method] += 1
            self.calls_by_name[(method, name)] += 1
            queue = self.faults.get((method, name))
            error: AgentError | Exception | None = queue.pop(0) if queue else None
        if error is not None:
            raise error


class InMemoryGoldenFile:
    """A golden file in a bucket, rewritten in place: ``read_uri``/``stat_uri`` for a ``GoldenFeed``, with
    a generation that moves on every write (as GCS's does) and counts of reads and stats."""

    def __init__(self, data: bytes | None = None) -> None:
        self.data, self.generation = data, 1
        self.reads = self.stats = 0

    def write(self, data: bytes) -> None:
        self.data, self.generation = data, self.generation + 1

    def stat(self, uri: str) -> str:
        self.stats += 1
        if self.data is None:
            raise ObjectNotFoundError(f"{uri}: no such object")
        return str(self.generation)

    def read(self, uri: str, generation: str | None = None) -> bytes:
        self.reads += 1
        if self.data is None:
            raise ObjectNotFoundError(f"{uri}: no such object")
        return self.data
