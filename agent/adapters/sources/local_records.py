"""file:// ``RecordStore``: compare-and-swap by an atomic rename under an exclusive ``fcntl`` lock.

Safe across processes on one host (tests run several agents on one machine) and on a shared mount whose
``flock`` is honoured. Each write takes ``<root>/.lock``, checks the object's current token, writes a temp
file, fsyncs it and renames it over the object: a reader sees the old bytes or the new ones, never half. A
token is the file's inode, mtime, size and a hash of its bytes, all taken from one open file, so the bytes
returned by ``read`` belong to exactly that token.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.adapters.sources.base import CREATE_ONLY, Expect, Record, RecordInfo
from agent.adapters.sources.local import LocalRoot
from agent.adapters.sources.streams import fsync_path
from agent.core.errors import PermanentSourceError, PreconditionFailed, SourceError, TransientSourceError
from agent.core.manifest import check_name

_LOCK_NAME = ".lock"


class LocalRecordStore(LocalRoot):
    """A ``RecordStore`` over ``<root>/<name>``; names whose segments start with '.' are its own."""

    def read(self, name: str) -> Record | None:
        path = self._path(name)
        try:
            with path.open("rb") as handle:
                data = handle.read()
                stat = os.fstat(handle.fileno())
        except FileNotFoundError:
            return None
        except OSError as err:
            raise _error(err, f"reading {self.uri}/{name}") from err
        return Record(name, _token(stat, data), stat.st_mtime, data)

    def write(self, name: str, data: bytes, *, expect: Expect) -> str:
        path = self._path(name)
        with self._locked(f"writing {self.uri}/{name}"):
            current = self.read(name)
            _check(self.uri, name, current, expect)
            tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(data)
                fsync_path(tmp)
                os.replace(tmp, path)
            except OSError as err:
                tmp.unlink(missing_ok=True)
                raise _error(err, f"writing {self.uri}/{name}") from err
            written = self.read(name)
        assert written is not None  # written under the lock; nothing else may remove it meanwhile
        return written.token

    def list(self, prefix: str = "") -> tuple[RecordInfo, ...]:
        try:
            infos = [self._info(path) for path in _files(self._root)]
        except OSError as err:
            raise _error(err, f"listing {self.uri}") from err
        return tuple(sorted((i for i in infos if i and i.name.startswith(prefix)), key=lambda i: i.name))

    def delete(self, name: str, *, expect: str) -> None:
        with self._locked(f"deleting {self.uri}/{name}"):
            current = self.read(name)
            if current is None:
                return
            _check(self.uri, name, current, expect)
            try:
                self._path(name).unlink()
            except OSError as err:
                raise _error(err, f"deleting {self.uri}/{name}") from err

    def _info(self, path: Path) -> RecordInfo | None:
        record = self.read(path.relative_to(self._root).as_posix())
        return None if record is None else RecordInfo(record.name, record.token, record.updated)

    def _path(self, name: str) -> Path:
        return self._root / check_name(name, where=self.uri)

    @contextmanager
    def _locked(self, what: str) -> Iterator[None]:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            handle = (self._root / _LOCK_NAME).open("a+b")
        except OSError as err:
            raise _error(err, what) from err
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _token(stat: os.stat_result, data: bytes) -> str:
    # The inode alone may be reused once a replaced file is freed, and mtime ticks coarsely: with the size
    # and a hash of the bytes, an equal token means equal bytes, so a stale CAS can only "win" over an
    # identical record.
    digest = hashlib.blake2b(data, digest_size=8).hexdigest()
    return f"{stat.st_ino}.{stat.st_mtime_ns}.{len(data)}.{digest}"


def _check(uri: str, name: str, current: Record | None, expect: Expect) -> None:
    if expect is CREATE_ONLY:
        if current is not None:
            raise PreconditionFailed(f"{uri}/{name}: exists already (create-only write)")
    elif current is None or current.token != expect:
        found = "no object" if current is None else f"token {current.token}"
        raise PreconditionFailed(f"{uri}/{name}: expected token {expect}, found {found}")


def _files(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` except the store's own (dot-named) ones; nothing if it is missing."""
    if not root.is_dir():
        return
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                yield Path(dirpath, name)


def _error(err: OSError, what: str) -> SourceError:
    detail = f"{what}: {err.strerror or err}"
    if isinstance(err, PermissionError):
        return PermanentSourceError(f"{detail}; check the path and the agent's permissions")
    return TransientSourceError(detail)
