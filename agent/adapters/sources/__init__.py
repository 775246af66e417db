"""Pick the adapter for a URI: the only place that knows which schemes exist.

``open_source`` (read side, the agent), ``open_sink`` (write side, ``tfs-agent publish``),
``open_record_store`` (the fleet's compare-and-swap records), ``read_uri`` (one small file such as a
golden file, given as gs://, file:// or a plain path) and ``stat_uri`` (that file's generation, without
reading it, so a changed golden file is noticed cheaply every pass). The GCS library is imported only when
a gs:// URI is used, so a file:// deployment never pays for it.
"""

from __future__ import annotations

from pathlib import Path

from agent.adapters.sources.base import (
    CREATE_ONLY,
    ModelSink,
    ModelSource,
    ObjectInfo,
    ObjectNotFoundError,
    Record,
    RecordInfo,
    RecordStore,
)
from agent.adapters.sources.local import (
    LocalSink,
    LocalSource,
    path_from_file_uri,
    read_local_file,
    stat_local_file,
)
from agent.adapters.sources.local_records import LocalRecordStore
from agent.adapters.sources.retrying import retry_policy
from agent.core.errors import ConfigError

__all__ = [
    "CREATE_ONLY",
    "ModelSink",
    "ModelSource",
    "ObjectInfo",
    "ObjectNotFoundError",
    "Record",
    "RecordInfo",
    "RecordStore",
    "open_record_store",
    "open_sink",
    "open_source",
    "read_uri",
    "retry_policy",
    "stat_uri",
]

_SCHEMES = "gs://bucket/prefix or file:///absolute/dir"


def open_source(uri: str) -> ModelSource:
    """The ``ModelSource`` for a model's bucket prefix (``gs://bucket/prefix`` or ``file:///dir``)."""
    if uri.startswith("gs://"):
        from agent.adapters.sources.gcs import GcsSource

        return GcsSource(uri)
    if uri.startswith("file://"):
        return LocalSource.from_uri(uri)
    raise ConfigError(f"{uri!r}: unsupported source; write {_SCHEMES}")


def open_sink(uri: str) -> ModelSink:
    """The ``ModelSink`` that ``publish`` writes a model's versions through."""
    if uri.startswith("gs://"):
        from agent.adapters.sources.gcs import GcsSink

        return GcsSink(uri)
    if uri.startswith("file://"):
        return LocalSink.from_uri(uri)
    if "://" not in uri:
        return LocalSink(Path(uri).absolute())
    raise ConfigError(f"{uri!r}: unsupported destination; write {_SCHEMES}")


def open_record_store(uri: str) -> RecordStore:
    """The ``RecordStore`` rooted at ``uri`` (for the fleet: ``<model source>/_fleet/<fleet name>``)."""
    if uri.startswith("gs://"):
        from agent.adapters.sources.gcs_records import GcsRecordStore

        return GcsRecordStore(uri)
    if uri.startswith("file://"):
        return LocalRecordStore.from_uri(uri)
    raise ConfigError(f"{uri!r}: unsupported record store; write {_SCHEMES}")


def read_uri(uri: str, generation: str | None = None) -> bytes:
    """The bytes of one small file named by ``gs://bucket/path``, ``file:///path`` or a plain path; on gs://
    of exactly ``generation`` when given (the one ``stat_uri`` saw).

    Raises ObjectNotFoundError if it does not exist, other SourceErrors when it cannot be read.
    """
    if uri.startswith("gs://"):
        from agent.adapters.sources.gcs import read_gs_uri

        return read_gs_uri(uri, generation=generation)
    return read_local_file(_local_path(uri))


def stat_uri(uri: str) -> str:
    """The file's generation: GCS's object generation, or a local file's mtime and size. No content read."""
    if uri.startswith("gs://"):
        from agent.adapters.sources.gcs import stat_gs_uri

        return stat_gs_uri(uri)
    return stat_local_file(_local_path(uri))


def _local_path(uri: str) -> Path:
    if "://" in uri and not uri.startswith("file://"):
        raise ConfigError(
            f"{uri!r}: unsupported scheme; write gs://bucket/path, file:///path or a plain path"
        )
    return path_from_file_uri(uri) if uri.startswith("file://") else Path(uri)
