"""The one narrow port to a bucket: list versions, list a version's objects, read a small object, download.

A bucket is a prefix holding integer version folders (``<prefix>/<N>/...``) as TF Serving expects. Every
adapter (``local.py`` for file://, ``gcs.py`` for gs://) implements ``ModelSource`` and maps its library's
errors to ``TransientSourceError`` / ``PermanentSourceError`` in exactly one place. ``ModelSink`` is the
writer side that ``tfs-agent publish`` uses; the agent itself never writes to a bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from agent.core.errors import PermanentSourceError


class ObjectNotFoundError(PermanentSourceError):
    """The object does not exist (404): for a manifest or marker this means "not complete yet"."""


@dataclass(frozen=True)
class ObjectInfo:
    """One object under ``<prefix>/<N>/``: name relative to the version folder ('/'-separated, as stored)."""

    name: str
    size: int
    crc32c: str | None = None
    """base64 big-endian crc32c as GCS reports it (file:// computes it, cached by size and mtime); None where
    a store cannot tell."""
    updated: float | None = None
    """Last modification, epoch seconds (used by ``completion: quiet:<duration>``)."""


@runtime_checkable
class ModelSource(Protocol):
    """A model's versions in a bucket."""

    @property
    def uri(self) -> str:
        """The prefix this source reads, e.g. ``gs://bucket/models/m``."""
        ...

    def list_versions(self) -> frozenset[int]:
        """Integer version folders under the prefix, with one delimited listing (constant cost)."""
        ...

    def list_objects(self, version: int) -> tuple[ObjectInfo, ...]:
        """Every object under ``<prefix>/<version>/``."""
        ...

    def read_bytes(self, version: int, name: str) -> bytes:
        """A small object (manifest, marker) of a version; ObjectNotFoundError if it does not exist."""
        ...

    def download(self, version: int, name: str, dest: Path) -> str:
        """Stream one object to ``dest`` (which the caller chose and checked) and return the crc32c
        (base64) of the bytes written, computed while streaming."""
        ...


@runtime_checkable
class ModelSink(Protocol):
    """The writer side of a bucket prefix, for ``tfs-agent publish``; names are relative to the prefix
    (``"3/saved_model.pb"``) and every write is all-or-nothing (temp + rename, or one GCS object write)."""

    @property
    def uri(self) -> str:
        """The prefix this sink writes, e.g. ``gs://bucket/models/m``."""
        ...

    def upload(self, path: Path, name: str, *, on_bytes: Callable[[int], None] | None = None) -> None:
        """Copy the local file ``path`` to the object ``name``; ``on_bytes`` hears each piece sent."""
        ...

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a small object (the manifest)."""
        ...

    def exists(self, name: str) -> bool:
        """Whether the object ``name`` exists."""
        ...

    def delete(self, name: str) -> None:
        """Remove the object ``name`` if it exists."""
        ...
