"""Pick the adapter for a URI: the only place that knows which schemes exist.

``open_source`` (read side, the agent), ``open_sink`` (write side, ``tfs-agent publish``),
``open_record_store`` (the fleet's compare-and-swap records), ``read_uri`` (one small file such as a
golden file, given as gs://, s3://, az://, file:// or a plain path) and ``stat_uri`` (that file's
generation, without reading it, so a changed golden file is noticed cheaply every pass). Each cloud SDK
is imported only when a URI of its scheme is used, so a deployment pays only for the stores it reads
(benchmarks/footprint.py). ``endpoint_url`` is a model's override for s3:// (an S3-compatible store) and
az:// (the account URL); other schemes ignore it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

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
from agent.infra.config import azure_account_url, azure_connection_string

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

_SCHEMES = "gs://bucket/prefix, s3://bucket/prefix, az://container/prefix or file:///absolute/dir"


def open_source(uri: str, *, endpoint_url: str | None = None, listing_checksums: bool = True) -> ModelSource:
    """The ``ModelSource`` for a model's bucket prefix. ``listing_checksums``: whether ``list_objects`` must
    report each object's crc32c (marker and quiet completion build the manifest from it); only s3:// pays
    extra requests for it."""
    if uri.startswith("gs://"):
        from agent.adapters.sources.gcs import GcsSource

        return GcsSource(uri)
    if uri.startswith("s3://"):
        _require_sdk("s3")
        from agent.adapters.sources.s3 import S3Source

        return S3Source(uri, endpoint_url=endpoint_url, listing_checksums=listing_checksums)
    if uri.startswith("az://"):
        _require_sdk("az")
        from agent.adapters.sources.azure import AzureSource

        return AzureSource(uri, _azure_service(endpoint_url))
    if uri.startswith("file://"):
        return LocalSource.from_uri(uri)
    raise ConfigError(f"{uri!r}: unsupported source; write {_SCHEMES}")


def open_sink(uri: str, *, endpoint_url: str | None = None) -> ModelSink:
    """The ``ModelSink`` that ``publish`` writes a model's versions through."""
    if uri.startswith("gs://"):
        from agent.adapters.sources.gcs import GcsSink

        return GcsSink(uri)
    if uri.startswith("s3://"):
        _require_sdk("s3")
        from agent.adapters.sources.s3 import S3Sink

        return S3Sink(uri, endpoint_url=endpoint_url)
    if uri.startswith("az://"):
        _require_sdk("az")
        from agent.adapters.sources.azure import AzureSink

        return AzureSink(uri, _azure_service(endpoint_url))
    if uri.startswith("file://"):
        return LocalSink.from_uri(uri)
    if "://" not in uri:
        return LocalSink(Path(uri).absolute())
    raise ConfigError(f"{uri!r}: unsupported destination; write {_SCHEMES}")


def open_record_store(uri: str, *, endpoint_url: str | None = None) -> RecordStore:
    """The ``RecordStore`` rooted at ``uri`` (for the fleet: ``<model source>/_fleet/<fleet name>``)."""
    if uri.startswith("gs://"):
        from agent.adapters.sources.gcs_records import GcsRecordStore

        return GcsRecordStore(uri)
    if uri.startswith("s3://"):
        _require_sdk("s3")
        from agent.adapters.sources.s3_records import S3RecordStore

        return S3RecordStore(uri, endpoint_url=endpoint_url)
    if uri.startswith("az://"):
        _require_sdk("az")
        from agent.adapters.sources.azure_records import AzureRecordStore

        return AzureRecordStore(uri, _azure_service(endpoint_url))
    if uri.startswith("file://"):
        return LocalRecordStore.from_uri(uri)
    raise ConfigError(f"{uri!r}: unsupported record store; write {_SCHEMES}")


def read_uri(uri: str, generation: str | None = None, *, endpoint_url: str | None = None) -> bytes:
    """The bytes of one small file named by a gs://, s3://, az:// or file:// URI, or a plain path; of exactly
    ``generation`` when given (the one ``stat_uri`` saw; gs, s3, az).

    Raises ObjectNotFoundError if it does not exist, other SourceErrors when it cannot be read.
    """
    if uri.startswith("gs://"):
        from agent.adapters.sources.gcs import read_gs_uri

        return read_gs_uri(uri, generation=generation)
    if uri.startswith("s3://"):
        _require_sdk("s3")
        from agent.adapters.sources.s3 import read_s3_uri

        return read_s3_uri(uri, endpoint_url=endpoint_url, generation=generation)
    if uri.startswith("az://"):
        _require_sdk("az")
        from agent.adapters.sources.azure import read_az_uri

        return read_az_uri(uri, _azure_service(endpoint_url), generation)
    return read_local_file(_local_path(uri))


def stat_uri(uri: str, *, endpoint_url: str | None = None) -> str:
    """The file's generation: GCS's object generation, the S3 or Azure ETag, or a local file's mtime and
    size. No content read."""
    if uri.startswith("gs://"):
        from agent.adapters.sources.gcs import stat_gs_uri

        return stat_gs_uri(uri)
    if uri.startswith("s3://"):
        _require_sdk("s3")
        from agent.adapters.sources.s3 import stat_s3_uri

        return stat_s3_uri(uri, endpoint_url=endpoint_url)
    if uri.startswith("az://"):
        _require_sdk("az")
        from agent.adapters.sources.azure import stat_az_uri

        return stat_az_uri(uri, _azure_service(endpoint_url))
    return stat_local_file(_local_path(uri))


def _local_path(uri: str) -> Path:
    if "://" in uri and not uri.startswith("file://"):
        raise ConfigError(
            f"{uri!r}: unsupported scheme; write gs://, s3://, az:// or file:// followed by the path, "
            "or a plain path"
        )
    return path_from_file_uri(uri) if uri.startswith("file://") else Path(uri)


def _azure_service(account_url: str | None) -> Any:
    """A model's own account URL (DefaultAzureCredential) wins; else the connection string; else
    AZURE_STORAGE_ACCOUNT (DefaultAzureCredential)."""
    _require_sdk("az")
    from agent.adapters.sources.azure import make_service

    if account_url is not None:
        return make_service(account_url=account_url)
    return make_service(connection_string=azure_connection_string(), account_url=azure_account_url())


_SDKS = {"s3": ("boto3", "s3"), "az": ("azure.storage.blob", "azure")}


def _require_sdk(scheme: str) -> None:
    """A clear error, naming the extra to install, where an image or venv lacks a scheme's SDK."""
    module, extra = _SDKS[scheme]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):
        found = False
    if not found:
        raise ConfigError(
            f"{scheme}:// needs {module.split('.')[0]}, which is not installed: "
            f"pip install 'tfs-agent[{extra}]' (the agent image carries it unless built with EXTRAS=)"
        )
