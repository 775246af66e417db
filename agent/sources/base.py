"""The one narrow port to a bucket: list versions, list a version's objects, read a small object, download one.

A bucket is a prefix holding integer version folders (``<prefix>/<N>/...``) as TF Serving expects. Every
adapter (``local.py`` for file://, ``gcs.py`` for gs://) implements ``ModelSource`` and maps its library's
errors to ``TransientSourceError`` / ``PermanentSourceError`` in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    """One object under ``<prefix>/<N>/``: name relative to the version folder ('/'-separated, as stored)."""

    name: str
    size: int
    crc32c: str | None = None
    """base64 big-endian crc32c as GCS reports it; None where the store keeps none (file://)."""
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
        """A small object (manifest, marker) of a version; PermanentSourceError if it does not exist."""
        ...

    def download(self, version: int, name: str, dest: Path) -> str:
        """Stream one object to ``dest`` (which the caller chose and checked) and return the crc32c
        (base64) of the bytes written, computed while streaming."""
        ...
