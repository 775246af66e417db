"""The one narrow port to a bucket: list versions, list a version's objects, read a small object, download.

A bucket is a prefix holding integer version folders (``<prefix>/<N>/...``) as TF Serving expects. Every
adapter (``local.py`` for file://, ``gcs.py`` for gs://, ``s3.py`` for s3://, ``azure.py`` for az://)
implements ``ModelSource`` and maps its library's errors to ``TransientSourceError`` /
``PermanentSourceError`` in exactly one place. ``ModelSink`` is the
writer side that ``tfs-agent publish`` uses. ``RecordStore`` is the one place the agent itself writes to a
bucket: small fleet records (agent/fleet) under ``<source>/_fleet/<fleet>/``, every write a compare-and-swap
on the store's own generation (docs/fleet.md, ADR 12).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final, Literal, Protocol, runtime_checkable

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

    def upload(
        self,
        path: Path,
        name: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
        crc32c: str | None = None,
    ) -> None:
        """Copy the local file ``path`` to the object ``name``; ``on_bytes`` hears each piece sent.
        ``crc32c`` is the file's checksum when the caller has it (publish does): stores that check an
        upload against a checksum the client sends (S3) use it instead of reading the file twice."""
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


class _CreateOnly(Enum):
    CREATE_ONLY = "create-only"


CREATE_ONLY: Final = _CreateOnly.CREATE_ONLY
"""``RecordStore.write(..., expect=CREATE_ONLY)``: succeed only if the object does not exist (GCS
``ifGenerationMatch=0``, S3/Azure ``If-None-Match: *``)."""

Expect = str | Literal[_CreateOnly.CREATE_ONLY]
"""What a conditional write expects to replace: the token read with the object, or CREATE_ONLY."""


@dataclass(frozen=True)
class RecordInfo:
    """One record as a listing shows it: no bytes, but its token and the store's own update time."""

    name: str
    """Relative to the store's root, '/'-separated (``slots/0.json``)."""
    token: str
    """Opaque version token: the GCS generation, an S3/Azure ETag, a file's inode+mtime. Changes on every
    write; pass it back as ``expect`` to overwrite exactly what was read."""
    updated: float
    """When the store last wrote the object, epoch seconds by the *store's* clock (GCS ``updated``, S3
    ``LastModified``, file mtime): pods compare these with each other, never with their own clocks."""


@dataclass(frozen=True)
class Record(RecordInfo):
    """One record with its bytes, read together (the bytes belong to exactly ``token``)."""

    data: bytes = b""


@runtime_checkable
class RecordStore(Protocol):
    """Small records under one prefix, written only by compare-and-swap (docs/fleet.md).

    Contract every adapter keeps (tests/integration/test_record_stores.py runs it against each):
    - ``write`` with ``expect=token`` succeeds only if the object's current token is ``token``; with
      ``expect=CREATE_ONLY`` only if the object does not exist. Otherwise it raises ``PreconditionFailed``
      and changes nothing. There is no unconditional write.
    - A store may refuse too many mutations of one object (GCS: about one per second) with
      ``RateLimitedError`` (a ``TransientSourceError``): back off, re-read, re-decide.
    - ``delete`` is best-effort: conditional where the store checks it, but fake-gcs-server ignores the
      precondition, so the protocol deletes only what is safe to lose (a long-dead pod's ledger entry) and
      releases a slot by overwriting it (a conditional write), never by deleting it.
    - Library errors map to the agent's ``SourceError`` tree in one place, as for ``ModelSource``.
    """

    @property
    def uri(self) -> str:
        """The root this store writes under, e.g. ``gs://bucket/models/m/_fleet/prod``."""
        ...

    def read(self, name: str) -> Record | None:
        """The record and its token, or None if it does not exist."""
        ...

    def write(self, name: str, data: bytes, *, expect: Expect) -> str:
        """Replace the record if it still is ``expect`` (or create it, for CREATE_ONLY); return the new
        token. ``PreconditionFailed`` if it is not."""
        ...

    def list(self, prefix: str = "") -> tuple[RecordInfo, ...]:
        """Every record whose name starts with ``prefix`` (recursive), sorted by name."""
        ...

    def delete(self, name: str, *, expect: str) -> None:
        """Remove the record if it exists; conditional on ``expect`` only where the store enforces it."""
        ...
