"""Pick the adapter for a URI: the only place that knows which schemes exist.

``open_source`` (read side, the agent), ``open_sink`` (write side, ``tfs-agent publish``),
``open_record_store`` (the fleet's compare-and-swap records), ``read_uri`` (one small file such as a
golden file, given as gs://, s3://, az://, file:// or a plain path) and ``stat_uri`` (that file's
generation, without reading it, so a changed golden file is noticed cheaply every pass). Each cloud SDK
is imported only when a URI of its scheme is used, so a deployment pays only for the stores it reads
(benchmarks/footprint.py). ``endpoint_url`` is a model's override for s3:// (an S3-compatible store) and
az:// (the account URL); other schemes ignore it. The cloud schemes are one table (``_CLOUDS``): a new one
is a row there, not a branch in each function.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Cloud:
    """A bucket scheme: its five entry points as ``module.name`` in this package, imported only when a URI of
    the scheme is used (and with them its SDK), and what a model's ``endpoint_url`` becomes in their keyword
    arguments."""

    source: str
    sink: str
    records: str
    read: str
    stat: str
    connect: Callable[[str | None], dict[str, Any]]
    sdk: str | None = None
    """The key in ``_SDKS`` of an SDK that is an optional extra: checked first, for a clear error."""
    listing_checksums: bool = False
    """Whether the source takes ``listing_checksums`` (a listing's checksums cost a request per object)."""

    def call(self, entry: str, uri: str, endpoint_url: str | None, **options: Any) -> Any:
        if self.sdk is not None:
            _require_sdk(self.sdk)
        module, _, name = getattr(self, entry).rpartition(".")
        factory = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return factory(uri, **self.connect(endpoint_url), **options)


_CLOUDS = {
    "gs://": _Cloud(
        source="gcs.GcsSource",
        sink="gcs.GcsSink",
        records="gcs_records.GcsRecordStore",
        read="gcs.read_gs_uri",
        stat="gcs.stat_gs_uri",
        connect=lambda _: {},
    ),
    "s3://": _Cloud(
        source="s3.S3Source",
        sink="s3.S3Sink",
        records="s3_records.S3RecordStore",
        read="s3.read_s3_uri",
        stat="s3.stat_s3_uri",
        connect=lambda url: {"endpoint_url": url},
        sdk="s3",
        listing_checksums=True,
    ),
    "az://": _Cloud(
        source="azure.AzureSource",
        sink="azure.AzureSink",
        records="azure_records.AzureRecordStore",
        read="azure.read_az_uri",
        stat="azure.stat_az_uri",
        connect=lambda url: {"service": _azure_service(url)},
        sdk="az",
    ),
}
"""The cloud schemes, by URI prefix; file:// (and a plain path) is handled by each function itself."""


def _cloud(uri: str) -> _Cloud | None:
    return next((cloud for scheme, cloud in _CLOUDS.items() if uri.startswith(scheme)), None)


def open_source(uri: str, *, endpoint_url: str | None = None, listing_checksums: bool = True) -> ModelSource:
    """The ``ModelSource`` for a model's bucket prefix. ``listing_checksums``: whether ``list_objects`` must
    report each object's crc32c (marker and quiet completion build the manifest from it); only s3:// pays
    extra requests for it."""
    if cloud := _cloud(uri):
        options = {"listing_checksums": listing_checksums} if cloud.listing_checksums else {}
        source: ModelSource = cloud.call("source", uri, endpoint_url, **options)
        return source
    if uri.startswith("file://"):
        return LocalSource.from_uri(uri)
    raise ConfigError(f"{uri!r}: unsupported source; write {_SCHEMES}")


def open_sink(uri: str, *, endpoint_url: str | None = None) -> ModelSink:
    """The ``ModelSink`` that ``publish`` writes a model's versions through."""
    if cloud := _cloud(uri):
        sink: ModelSink = cloud.call("sink", uri, endpoint_url)
        return sink
    if uri.startswith("file://"):
        return LocalSink.from_uri(uri)
    if "://" not in uri:
        return LocalSink(Path(uri).absolute())
    raise ConfigError(f"{uri!r}: unsupported destination; write {_SCHEMES}")


def open_record_store(uri: str, *, endpoint_url: str | None = None) -> RecordStore:
    """The ``RecordStore`` rooted at ``uri`` (for the fleet: ``<model source>/_fleet/<fleet name>``)."""
    if cloud := _cloud(uri):
        store: RecordStore = cloud.call("records", uri, endpoint_url)
        return store
    if uri.startswith("file://"):
        return LocalRecordStore.from_uri(uri)
    raise ConfigError(f"{uri!r}: unsupported record store; write {_SCHEMES}")


def read_uri(uri: str, generation: str | None = None, *, endpoint_url: str | None = None) -> bytes:
    """The bytes of one small file named by a gs://, s3://, az:// or file:// URI, or a plain path; of exactly
    ``generation`` when given (the one ``stat_uri`` saw; gs, s3, az).

    Raises ObjectNotFoundError if it does not exist, other SourceErrors when it cannot be read.
    """
    if cloud := _cloud(uri):
        data: bytes = cloud.call("read", uri, endpoint_url, generation=generation)
        return data
    return read_local_file(_local_path(uri))


def stat_uri(uri: str, *, endpoint_url: str | None = None) -> str:
    """The file's generation: GCS's object generation, the S3 or Azure ETag, or a local file's mtime and
    size. No content read."""
    if cloud := _cloud(uri):
        token: str = cloud.call("stat", uri, endpoint_url)
        return token
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
