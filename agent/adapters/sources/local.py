"""file:// — a local directory laid out like a bucket: the embedded default for demos, tests, shared mounts.

It behaves like the GCS adapter wherever the agent can tell: only canonical integer folders are versions,
a missing object is ``ObjectNotFoundError``, and listings carry a crc32c (computed here, cached by size,
mtime and inode so that polling an unchanged version does not re-read it). OS errors are mapped once, in
``_source_error``; publishing writes each file to a temp name and renames it: readers never see half a file.
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

from agent.adapters.sources.base import ObjectInfo, ObjectNotFoundError
from agent.adapters.sources.streams import CHUNK_SIZE, crc32c_of_file, fsync_path, read_chunks, write_chunks
from agent.core.errors import ConfigError, PermanentSourceError, SourceError, TransientSourceError
from agent.core.manifest import check_name, version_from_name

_NOT_FOUND = frozenset({errno.ENOENT, errno.ENOTDIR})
_DENIED = frozenset({errno.EACCES, errno.EPERM, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG})


def path_from_file_uri(uri: str) -> Path:
    """``file:///abs/dir`` → ``/abs/dir``; refuse relative paths and remote hosts, with the fix."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise ConfigError(f"{uri!r} is not a local file URI; write file:///absolute/path")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise ConfigError(f"{uri!r} must name an absolute path, e.g. file:///srv/bucket/model")
    return path


def read_local_file(path: Path) -> bytes:
    """A whole local file, with OS errors mapped like any source read."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise _source_error(err, f"reading {path}") from err


def stat_local_file(path: Path) -> str:
    """A token that changes whenever the file is rewritten: its modification time (ns) and size."""
    try:
        info = path.stat()
    except OSError as err:
        raise _source_error(err, f"checking {path}") from err
    return f"mtime:{info.st_mtime_ns} size:{info.st_size}"


def _source_error(err: OSError, what: str) -> SourceError:
    """The one place OS errors become the agent's source errors."""
    detail = f"{what}: {err.strerror or err}"
    if err.errno in _NOT_FOUND:
        return ObjectNotFoundError(f"{detail} (no such file)")
    if err.errno in _DENIED:
        return PermanentSourceError(f"{detail}; check the path and the agent's permissions")
    return TransientSourceError(detail)


class LocalRoot:
    """The directory a file:// source, sink or record store works under, and the URI it reports."""

    def __init__(self, root: Path) -> None:
        self._root = root

    @classmethod
    def from_uri(cls, uri: str) -> Self:
        return cls(path_from_file_uri(uri))

    @property
    def uri(self) -> str:
        return "file://" + self._root.as_posix()


class LocalSource(LocalRoot):
    """A ``ModelSource`` over ``<root>/<N>/...`` on a local or mounted filesystem."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._crc_cache: dict[Path, tuple[tuple[int, int, int], str]] = {}
        self._lock = threading.Lock()

    def list_versions(self) -> frozenset[int]:
        try:
            with os.scandir(self._root) as entries:
                names = [e.name for e in entries if e.is_dir()]
        except OSError as err:
            raise _source_error(err, f"listing {self.uri}") from err
        return frozenset(v for v in map(version_from_name, names) if v is not None)

    def list_objects(self, version: int) -> tuple[ObjectInfo, ...]:
        base = self._root / str(version)
        try:
            infos = [self._info(base, path) for path in _walk_files(base)]
        except OSError as err:
            raise _source_error(err, f"listing {self.uri}/{version}/") from err
        return tuple(sorted(infos, key=lambda i: i.name))

    def read_bytes(self, version: int, name: str) -> bytes:
        return read_local_file(self._object_path(version, name))

    def download(self, version: int, name: str, dest: Path) -> str:
        path = self._object_path(version, name)
        return write_chunks(_read_source(path, f"{self.uri}/{version}/{name}"), dest)

    def _object_path(self, version: int, name: str) -> Path:
        return self._root / str(version) / check_name(name, where=self.uri)

    def _info(self, base: Path, path: Path) -> ObjectInfo:
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        with self._lock:
            cached = self._crc_cache.get(path)
        crc = cached[1] if cached and cached[0] == key else crc32c_of_file(path)
        with self._lock:
            self._crc_cache[path] = (key, crc)
        return ObjectInfo(path.relative_to(base).as_posix(), stat.st_size, crc, stat.st_mtime)


def _walk_files(base: Path) -> Iterator[Path]:
    """Regular files under ``base`` (not following directory symlinks); nothing if ``base`` is missing."""
    if not base.is_dir():
        return
    for dirpath, _dirs, files in os.walk(base, onerror=_raise):
        for name in files:
            path = Path(dirpath, name)
            if path.is_file():
                yield path


def _raise(err: OSError) -> None:
    raise err


def _read_source(path: Path, what: str) -> Iterator[bytes]:
    """The object's bytes; read errors are source errors, so write errors stay OSError for the caller."""
    try:
        with path.open("rb", buffering=0) as handle:
            while chunk := handle.read(CHUNK_SIZE):
                yield chunk
    except OSError as err:
        raise _source_error(err, f"reading {what}") from err


class LocalSink(LocalRoot):
    """A ``ModelSink`` writing ``<root>/<name>`` via a temp file and an atomic rename."""

    def upload(
        self,
        path: Path,
        name: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
        crc32c: str | None = None,
    ) -> None:
        self._write(name, lambda tmp: write_chunks(read_chunks(path), tmp, on_chunk=on_bytes))

    def write_bytes(self, name: str, data: bytes) -> None:
        self._write(name, lambda tmp: tmp.write_bytes(data))

    def exists(self, name: str) -> bool:
        return (self._root / check_name(name, where=self.uri)).is_file()

    def delete(self, name: str) -> None:
        target = self._root / check_name(name, where=self.uri)
        try:
            target.unlink(missing_ok=True)
        except OSError as err:
            raise _source_error(err, f"deleting {self.uri}/{name}") from err

    def _write(self, name: str, fill: Callable[[Path], object]) -> None:
        dest = self._root / check_name(name, where=self.uri)
        tmp = dest.with_name(f".{dest.name}.tmp-{secrets.token_hex(4)}")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fill(tmp)
            fsync_path(tmp)
            os.replace(tmp, dest)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise _source_error(err, f"writing {self.uri}/{name}") from err
