"""What the bucket adapters share: ``scheme://bucket/prefix`` URIs and the keys under them (``BucketPrefix``,
the base of every bucket source, sink and record store), the source's version folders from a delimited
listing and its reads by checked name (``BucketSource``), and the sink of the stores that take a crc32c with
every write (S3, Azure).

Each adapter keeps its own library calls and error mapping; only the logic that is the same for every store
lives here, so the schemes cannot drift apart (a prefix always ends with '/', a version folder is a
canonical integer, every name is checked before it reaches a store).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from agent.adapters.sources.base import ObjectNotFoundError
from agent.adapters.sources.streams import CountingReader, crc32c_of_bytes, crc32c_of_file
from agent.core.errors import (
    ConfigError,
    PermanentSourceError,
    PreconditionFailed,
    RateLimitedError,
    SourceError,
    TransientSourceError,
)
from agent.core.manifest import check_name, version_from_name

POOL_SIZE = 64
"""HTTP connections an adapter keeps per host: the highest download_concurrency the config allows (requests
and botocore keep only 10 by default)."""
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses every store means as "try again later"."""


def split_bucket_uri(uri: str, scheme: str, bucket_name: re.Pattern[str], rule: str) -> tuple[str, str]:
    """``<scheme>://bucket/a/b`` → ``("bucket", "a/b/")``; the prefix is empty or ends with '/'. ``rule``
    says in words what ``bucket_name`` allows, for the error."""
    start = f"{scheme}://"
    noun = "container" if scheme == "az" else "bucket"
    if not uri.startswith(start):
        raise ConfigError(f"{uri!r} is not a {start} URI; write {start}{noun}/prefix")
    bucket, _, prefix = uri[len(start) :].partition("/")
    if not bucket_name.fullmatch(bucket):
        raise ConfigError(f"{uri!r}: {bucket!r} is not a valid {noun} name ({rule})")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def status_error(
    status: int | None,
    text: str,
    *,
    thing: str,
    holder: str,
    denied: str,
    not_found: bool = False,
    lost_race: bool = False,
    rate_limited: bool = False,
    transient: bool = False,
) -> SourceError:
    """A store's error answer as the agent's error: what each HTTP status means is the same on every store
    (no status at all: the request never got an answer). ``text`` says what failed and how the store put it;
    a 404 names the missing ``thing`` or ``holder`` (object or bucket), a 401/403 appends ``denied`` (the
    permission to grant). The flags are a store's own error codes that mean the same as a status (S3)."""
    if status == 404 or not_found:
        return ObjectNotFoundError(f"{text} (no such {thing} or {holder})")
    if status in (401, 403):
        return PermanentSourceError(f"{text}; {denied}")
    if status == 412 or lost_race:
        return PreconditionFailed(f"{text} (the {thing} changed since it was read)")
    if status == 429 or rate_limited:
        return RateLimitedError(text)
    if status is None or status in TRANSIENT_STATUS or transient:
        return TransientSourceError(text)
    return PermanentSourceError(text)


def versions_in(prefix: str, folders: Iterable[str]) -> frozenset[int]:
    """The integer versions among the "sub-folders" (``<prefix><N>/``) of a delimited listing."""
    names = (folder[len(prefix) :].rstrip("/") for folder in folders)
    return frozenset(v for v in map(version_from_name, names) if v is not None)


class BucketPrefix:
    """``<scheme>://bucket/prefix`` as an adapter addresses objects under it: the URI it reports (no trailing
    '/') and the key of a name relative to the prefix, checked before it reaches the store."""

    def __init__(self, scheme: str, bucket: str, prefix: str) -> None:
        self._prefix = prefix
        self._uri = f"{scheme}://{bucket}/{prefix}".rstrip("/")

    @property
    def uri(self) -> str:
        return self._uri

    def _key(self, name: str) -> str:
        return self._prefix + check_name(name, where=self._uri)


class VersionStore(Protocol):
    """The reads a ``BucketSource`` makes of its store (each adapter's bucket or container class)."""

    def prefixes(self, prefix: str, /) -> list[str]: ...

    def read(self, name: str, /) -> bytes: ...

    def download(self, name: str, dest: Path, /) -> str: ...


StoreT = TypeVar("StoreT", bound=VersionStore)


class BucketSource(BucketPrefix, Generic[StoreT]):
    """The part of a ``ModelSource`` over a bucket that is the same on every store: the versions are the
    integer folders of one delimited listing, and a version's objects are read or downloaded by checked name.
    Each adapter lists a version's objects itself (``list_objects``: every store reports other fields)."""

    def __init__(self, scheme: str, bucket: str, prefix: str, store: StoreT) -> None:
        super().__init__(scheme, bucket, prefix)
        self._store = store

    def list_versions(self) -> frozenset[int]:
        return versions_in(self._prefix, self._store.prefixes(self._prefix))

    def read_bytes(self, version: int, name: str) -> bytes:
        return self._store.read(self._object(version, name))

    def download(self, version: int, name: str, dest: Path) -> str:
        return self._store.download(self._object(version, name), dest)

    def _object(self, version: int, name: str) -> str:
        return f"{self._prefix}{version}/{check_name(name, where=self._uri)}"


class ChecksummedStore(Protocol):
    """Whole-object writes that carry the object's crc32c (S3: checked by the store; Azure: kept as
    metadata)."""

    def put(self, name: str, data: Any, crc32c: str, *, length: int) -> None: ...

    def exists(self, name: str) -> bool: ...

    def delete(self, name: str) -> None: ...


class ChecksummedSink(BucketPrefix):
    """A ``ModelSink`` over a ``ChecksummedStore``: every upload computes (or is given) the file's crc32c."""

    def __init__(self, scheme: str, bucket: str, prefix: str, store: ChecksummedStore) -> None:
        super().__init__(scheme, bucket, prefix)
        self._store = store

    def upload(
        self,
        path: Path,
        name: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
        crc32c: str | None = None,
    ) -> None:
        checksum = crc32c if crc32c is not None else crc32c_of_file(path)
        with path.open("rb") as handle:
            body = handle if on_bytes is None else CountingReader(handle, on_bytes)
            self._store.put(self._key(name), body, checksum, length=path.stat().st_size)

    def write_bytes(self, name: str, data: bytes) -> None:
        self._store.put(self._key(name), data, crc32c_of_bytes(data), length=len(data))

    def exists(self, name: str) -> bool:
        return self._store.exists(self._key(name))

    def delete(self, name: str) -> None:
        self._store.delete(self._key(name))
