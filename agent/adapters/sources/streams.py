"""Streaming bytes to and from disk while computing crc32c, shared by every source, staging and publish.

One implementation so that every copy is checked the same way: 1 MiB reads (large enough that Python's
per-chunk overhead vanishes next to the C crc32c and the syscalls) and the checksum in GCS's own encoding
(base64 of the big-endian 4 bytes), so a value from a listing and one computed here compare as strings.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import google_crc32c

CHUNK_SIZE = 1024 * 1024

# google_crc32c ships py.typed with unannotated functions; bind them once under typed names.
_new_checksum: Callable[[], Any] = google_crc32c.Checksum
_crc32c_value: Callable[[bytes], int] = google_crc32c.value


def encode_crc32c(value: int) -> str:
    """An unsigned 32-bit crc32c as GCS writes it: base64 of the 4 big-endian bytes."""
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def crc32c_of_bytes(data: bytes) -> str:
    """The GCS-style crc32c of ``data``."""
    return encode_crc32c(_crc32c_value(data))


def crc32c_of_file(path: Path, *, chunk_size: int = CHUNK_SIZE) -> str:
    """The GCS-style crc32c of a local file, read in chunks."""
    checksum = _new_checksum()
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(chunk_size):
            checksum.update(chunk)
    return encode_crc32c(int.from_bytes(checksum.digest(), "big"))


def write_chunks(
    chunks: Iterable[bytes], dest: Path, *, on_chunk: Callable[[int], None] | None = None
) -> str:
    """Write ``chunks`` to ``dest`` (truncating it) and return their crc32c; ``on_chunk`` gets each length."""
    checksum = _new_checksum()
    with dest.open("wb") as handle:
        for chunk in chunks:
            checksum.update(chunk)
            handle.write(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
    return encode_crc32c(int.from_bytes(checksum.digest(), "big"))


def read_chunks(path: Path, *, chunk_size: int = CHUNK_SIZE) -> Iterable[bytes]:
    """The bytes of a local file, ``chunk_size`` at a time."""
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def fsync_path(path: Path) -> None:
    """Flush a file's or directory's data and metadata to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CountingReader:
    """A file wrapper telling ``on_bytes`` how far an SDK has read (the publish progress bar); everything
    else (seek, tell) goes to the file. Only bytes past the furthest point read so far count: SDKs that
    read the body twice (botocore hashes it before sending over plain HTTP) or rewind to retry still add
    up to the file's size."""

    def __init__(self, handle: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self._handle, self._on_bytes = handle, on_bytes
        self._furthest = handle.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        position = self._handle.tell()
        if position > self._furthest:
            self._on_bytes(position - self._furthest)
            self._furthest = position
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)
