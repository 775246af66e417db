"""az://container/prefix through azure-storage-blob.

Credentials: a connection string (``AZURE_STORAGE_CONNECTION_STRING``, e.g. for Azurite), or an account URL
(a model's ``endpoint_url``, or ``https://<AZURE_STORAGE_ACCOUNT>.blob.core.windows.net``) with
``DefaultAzureCredential`` (workload identity, managed identity, ``az login``), imported only then because
azure-identity is heavy and an optional extra. The SDK's own retries are off: staging retries
``TransientSourceError`` with the one policy every source shares. Azure keeps no CRC32C: ``publish`` records
the crc32c in the blob's metadata (``crc32c``) as well as in the manifest, listings report it from there, and
staging checks the bytes it downloads against the manifest as on every scheme. Downloads stream one GET in
1 MiB reads. Every SDK error becomes a ``SourceError`` in ``mapped``, only there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import requests
import urllib3
from azure.core import MatchConditions
from azure.core import exceptions as az_exceptions
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobProperties, BlobServiceClient, ContainerClient

from agent.adapters.sources.base import ObjectInfo, ObjectNotFoundError
from agent.adapters.sources.prefixes import (
    POOL_SIZE,
    BucketSource,
    ChecksummedSink,
    split_bucket_uri,
    status_error,
)
from agent.adapters.sources.streams import CHUNK_SIZE, write_chunks
from agent.core.errors import (
    ConfigError,
    PreconditionFailed,
    SourceError,
    TransientSourceError,
)

_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_RANGE = 4 * 2**20  # bytes per ranged GET of the SDK's own downloader (small reads): at most this is held
CRC32C_METADATA = "crc32c"


def split_az_uri(uri: str) -> tuple[str, str]:
    """``az://container/a/b`` → ``("container", "a/b/")``; the prefix is empty or ends with '/'."""
    return split_bucket_uri(uri, "az", _CONTAINER, "3-63 lowercase letters, digits, single hyphens")


def make_service(
    *, connection_string: str | None = None, account_url: str | None = None, timeout: float = 60.0
) -> BlobServiceClient:
    """A blob service client from a connection string, or an account URL with DefaultAzureCredential."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    transport = RequestsTransport(
        session=session,
        session_owner=False,
        connection_timeout=timeout,
        read_timeout=timeout,
        # azure-core reads a response body 4 KiB at a time by default: a Python loop that caps a download
        # far below the network (benchmarks/staging.py); 1 MiB reads as on every other scheme.
        connection_data_block_size=CHUNK_SIZE,
    )
    options: dict[str, Any] = {
        "retry_total": 0,
        "max_single_get_size": _RANGE,
        "max_chunk_get_size": _RANGE,
        "transport": transport,
    }
    with mapped("creating the Azure Blob client"):
        if connection_string:
            return BlobServiceClient.from_connection_string(connection_string, **options)
        if not account_url:
            raise ConfigError(
                "az:// needs credentials: set AZURE_STORAGE_CONNECTION_STRING, or the account with "
                "AZURE_STORAGE_ACCOUNT or the model's endpoint_url (https://<account>.blob.core.windows.net)"
            )
        return BlobServiceClient(account_url, credential=_default_credential(), **options)


def _default_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as err:
        raise ConfigError(
            "az:// with an account URL needs azure-identity: pip install 'tfs-agent[azure-identity]', "
            "or set AZURE_STORAGE_CONNECTION_STRING"
        ) from err
    return DefaultAzureCredential()


class AzureContainer:
    """Blob operations on one container, each mapped to the agent's errors."""

    def __init__(self, client: ContainerClient) -> None:
        self.client = client
        self.name = f"az://{client.container_name}"

    def prefixes(self, prefix: str) -> list[str]:
        """The "sub-folders" directly under ``prefix``: one delimited listing (one request per 5000)."""
        with mapped(f"listing {self.name}/{prefix}"):
            items = self.client.walk_blobs(name_starts_with=prefix, delimiter="/")
            return sorted(i.name for i in items if not isinstance(i, BlobProperties))

    def objects(self, prefix: str) -> list[BlobProperties]:
        """Every blob under ``prefix``, with name, size, metadata and modification time."""
        with mapped(f"listing {self.name}/{prefix}"):
            return list(self.client.list_blobs(name_starts_with=prefix, include=["metadata"]))

    def download(self, name: str, dest: Path) -> str:
        """Stream the blob to ``dest`` in 1 MiB reads; return the crc32c of the bytes written.

        One GET through the client's own pipeline (its credentials, signing and connection pool), as
        gcs.py does with its library's session: the SDK's downloader buffers every range it fetches
        whole, a copy per range and far slower (benchmarks/staging.py)."""
        what = f"downloading {self.name}/{name}"
        blob = self.client.get_blob_client(name)
        with mapped(what):
            response = blob._pipeline.run(HttpRequest("GET", blob.url), stream=True).http_response
            try:
                if response.status_code != 200:
                    response.read()
                    raise _status_error(response.status_code, what, _error_code(response))
                return write_chunks(response.iter_bytes(), dest)
            finally:
                response.close()

    def read(self, name: str, etag: str | None = None) -> bytes:
        """A small blob's bytes (of exactly ``etag`` when given: the one a stat saw; a newer blob is
        ObjectNotFoundError, as GCS answers for a generation that is gone)."""
        what = f"reading {self.name}/{name}"
        condition: dict[str, Any] = (
            {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        )
        try:
            with mapped(what):
                blob = self.client.get_blob_client(name)
                return bytes(blob.download_blob(max_concurrency=1, **condition).readall())
        except PreconditionFailed as err:
            raise ObjectNotFoundError(f"{what}: ETag {etag} is gone (rewritten since)") from err

    def etag(self, name: str) -> str:
        """The blob's ETag: one HEAD; it changes whenever the blob is rewritten."""
        with mapped(f"checking {self.name}/{name}"):
            return str(self.client.get_blob_client(name).get_blob_properties().etag)

    def put(self, name: str, data: Any, crc32c: str, *, length: int) -> None:
        """Write one blob whole, its crc32c in the metadata; a reader sees the old blob or the new one."""
        with mapped(f"writing {self.name}/{name}"):
            self.client.get_blob_client(name).upload_blob(
                data, length=length, overwrite=True, max_concurrency=1, metadata={CRC32C_METADATA: crc32c}
            )

    def exists(self, name: str) -> bool:
        with mapped(f"checking {self.name}/{name}"):
            return bool(self.client.get_blob_client(name).exists())

    def delete(self, name: str) -> None:
        with mapped(f"deleting {self.name}/{name}"), suppress(az_exceptions.ResourceNotFoundError):
            self.client.get_blob_client(name).delete_blob()


class AzureSource(BucketSource[AzureContainer]):
    """A ``ModelSource`` over ``az://container/prefix/<N>/...``, through ``service`` (see make_service)."""

    def __init__(self, uri: str, service: BlobServiceClient) -> None:
        container, prefix = split_az_uri(uri)
        super().__init__("az", container, prefix, AzureContainer(service.get_container_client(container)))

    def list_objects(self, version: int) -> tuple[ObjectInfo, ...]:
        base = f"{self._prefix}{version}/"
        return tuple(
            ObjectInfo(
                name=blob.name[len(base) :],
                size=int(blob.size or 0),
                crc32c=(blob.metadata or {}).get(CRC32C_METADATA),
                updated=blob.last_modified.timestamp() if blob.last_modified else None,
            )
            for blob in self._store.objects(base)
        )


class AzureSink(ChecksummedSink):
    """A ``ModelSink`` writing blobs under ``az://container/prefix/``; each write is one blob upload with
    the crc32c in its metadata."""

    def __init__(self, uri: str, service: BlobServiceClient) -> None:
        container, prefix = split_az_uri(uri)
        super().__init__("az", container, prefix, AzureContainer(service.get_container_client(container)))


def read_az_uri(uri: str, service: BlobServiceClient, generation: str | None = None) -> bytes:
    """The bytes of one blob named by a full ``az://container/path`` URI (of ETag ``generation`` if given)."""
    container, name = _blob_uri(uri)
    return AzureContainer(service.get_container_client(container)).read(name, generation)


def stat_az_uri(uri: str, service: BlobServiceClient) -> str:
    """The ETag of the blob named by ``az://container/path`` (cheap: no content is read)."""
    container, name = _blob_uri(uri)
    return AzureContainer(service.get_container_client(container)).etag(name)


def _blob_uri(uri: str) -> tuple[str, str]:
    container, name = split_az_uri(uri)
    if not name:
        raise ConfigError(f"{uri!r} names a container, not a blob; write az://container/path/to/file")
    return container, name.rstrip("/")


def _error_code(response: Any) -> str:
    """Azure's error code header (``BlobNotFound``, ``AuthorizationFailure``...), or the reason phrase."""
    return str(response.headers.get("x-ms-error-code") or response.reason or "")


def _status_error(status: int | None, what: str, detail: str) -> SourceError:
    """An HTTP status from Azure as the agent's error, with the fix where there is one."""
    text = f"{what}: HTTP {status} {detail.strip().splitlines()[0] if detail.strip() else ''}".rstrip()
    role = "the Storage Blob Data Reader role on the container (Contributor for publish)"
    return status_error(
        status, text, thing="blob", holder="container", denied=f"grant the agent's identity {role}"
    )


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """The one place azure-core/requests errors become SourceErrors (azure.py and azure_records.py); local
    OSErrors pass through."""
    try:
        yield
    except SourceError:
        raise
    except az_exceptions.DecodeError as err:  # IncompleteReadError: the body ended early
        raise TransientSourceError(f"{what}: {type(err).__name__}: {err.message}") from err
    except az_exceptions.ClientAuthenticationError as err:
        raise _status_error(err.status_code or 401, what, err.message) from err
    except az_exceptions.HttpResponseError as err:
        raise _status_error(err.status_code, what, err.message) from err
    except (az_exceptions.ServiceRequestError, az_exceptions.ServiceResponseError) as err:
        raise TransientSourceError(f"{what}: {type(err).__name__}: {err.message}") from err
    except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
        raise TransientSourceError(f"{what}: {type(err).__name__}: {err}") from err
    except az_exceptions.AzureError as err:
        raise TransientSourceError(f"{what}: {type(err).__name__}: {err.message}") from err
    except ValueError as err:  # a malformed connection string or account URL
        raise ConfigError(f"{what}: {err}; check AZURE_STORAGE_CONNECTION_STRING or endpoint_url") from err
