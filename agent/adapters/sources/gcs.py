"""gs:// through google-cloud-storage: cheap discovery (delimited listings) and fast, checked downloads.

Credentials are found the standard Google way (workload identity, GOOGLE_APPLICATION_CREDENTIALS, gcloud);
with ``STORAGE_EMULATOR_HOST`` set the library talks to that emulator anonymously. Listings and small reads
use the library; object downloads stream the JSON API media endpoint over the library's own authorized
session in 1 MiB reads, because the library's download path reads 8 KiB at a time and is the bottleneck
(see benchmarks/staging.py). Library retries are turned off: staging retries ``TransientSourceError`` itself,
with one policy for every source. Every library error becomes a ``SourceError`` in ``mapped``, only there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud import storage
from google.cloud.storage import exceptions as storage_exceptions

from agent.adapters.sources.base import ObjectInfo, ObjectNotFoundError
from agent.adapters.sources.prefixes import (
    POOL_SIZE,
    BucketPrefix,
    BucketSource,
    split_bucket_uri,
    status_error,
)
from agent.adapters.sources.streams import CHUNK_SIZE, CountingReader, write_chunks
from agent.core.errors import (
    ConfigError,
    PermanentSourceError,
    SourceError,
    TransientSourceError,
)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


def split_gs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` → ``("bucket", "a/b/")``; the prefix is empty or ends with '/'."""
    return split_bucket_uri(uri, "gs", _BUCKET, "lowercase letters, digits, - _ .")


def make_client() -> storage.Client:
    """A storage client with default credentials, or anonymous against ``STORAGE_EMULATOR_HOST``."""
    with mapped("creating the Google Cloud Storage client"):
        client = storage.Client(project=None)
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
        client._http.mount("https://", adapter)
        client._http.mount("http://", adapter)
    return client


class GcsBucket:
    """Object operations on one bucket, each mapped to the agent's errors (``client``: None for
    ``make_client()``'s)."""

    def __init__(self, client: storage.Client | None, name: str, *, timeout: float = 60.0) -> None:
        self.client = client if client is not None else make_client()
        self.name, self._timeout = name, timeout
        self._bucket = self.client.bucket(name)

    def prefixes(self, prefix: str) -> list[str]:
        """The "sub-folders" directly under ``prefix``: one delimited listing (one request per 1000)."""
        with mapped(f"listing gs://{self.name}/{prefix}"):
            pages = self.client.list_blobs(
                self.name, prefix=prefix, delimiter="/", fields="prefixes,nextPageToken", **self._opts()
            )
            for _ in pages:
                pass
            return sorted(pages.prefixes)

    def objects(self, prefix: str) -> list[Any]:
        """Every object (blob) under ``prefix``, with name, size, crc32c and update time."""
        with mapped(f"listing gs://{self.name}/{prefix}"):
            fields = "items(name,size,crc32c,updated),nextPageToken"
            return list(self.client.list_blobs(self.name, prefix=prefix, fields=fields, **self._opts()))

    def download(self, name: str, dest: Path) -> str:
        """Stream the object to ``dest``; return the crc32c of the bytes written."""
        what = f"gs://{self.name}/{name}"
        with mapped(f"downloading {what}"), self._get(name, what) as response:
            return write_chunks(response.raw.stream(CHUNK_SIZE, decode_content=False), dest)

    def read(self, name: str, generation: str | None = None) -> bytes:
        """A small object's bytes (of exactly ``generation`` when given: the one a stat saw)."""
        what = f"gs://{self.name}/{name}"
        with mapped(f"reading {what}"), self._get(name, what, generation) as response:
            return bytes(response.raw.read(decode_content=False))

    def generation(self, name: str) -> str:
        """The object's generation: one metadata GET, which changes whenever the object is rewritten."""
        with mapped(f"checking gs://{self.name}/{name}"):
            blob = self._bucket.get_blob(name, **self._opts())
        if blob is None:
            raise ObjectNotFoundError(f"gs://{self.name}/{name}: no such object")
        return str(blob.generation)

    def upload(self, path: Path, name: str, on_bytes: Callable[[int], None] | None = None) -> None:
        with mapped(f"uploading {path} to gs://{self.name}/{name}"), path.open("rb") as handle:
            stream = handle if on_bytes is None else CountingReader(handle, on_bytes)
            self._bucket.blob(name).upload_from_file(
                stream, size=path.stat().st_size, checksum="crc32c", timeout=self._timeout
            )

    def write(self, name: str, data: bytes, content_type: str) -> None:
        with mapped(f"writing gs://{self.name}/{name}"):
            blob = self._bucket.blob(name)
            blob.upload_from_string(data, content_type=content_type, checksum="crc32c", timeout=self._timeout)

    def exists(self, name: str) -> bool:
        with mapped(f"checking gs://{self.name}/{name}"):
            return bool(self._bucket.blob(name).exists(timeout=self._timeout))

    def delete(self, name: str) -> None:
        with mapped(f"deleting gs://{self.name}/{name}"), suppress(api_exceptions.NotFound):
            self._bucket.blob(name).delete(timeout=self._timeout)

    @contextmanager
    def _get(self, name: str, what: str, generation: str | None = None) -> Iterator[requests.Response]:
        url = (
            f"{self.client.api_endpoint}/download/storage/v1/b/{quote(self.name, safe='')}"
            f"/o/{quote(name, safe='')}?alt=media"
        ) + (f"&generation={quote(generation)}" if generation else "")
        # The library's own authorized session: same credentials, token refresh and connection pool.
        session: requests.Session = self.client._http
        # Ask for the stored bytes (no decompressive transcoding) so the crc32c matches the listing's.
        response = session.get(url, stream=True, timeout=self._timeout, headers={"Accept-Encoding": "gzip"})
        try:
            if response.status_code != 200:
                raise _status_error(response.status_code, what, response.text[:200])
            yield response
        finally:
            response.close()

    def _opts(self) -> dict[str, Any]:
        return {"retry": None, "timeout": self._timeout}


class GcsSource(BucketSource[GcsBucket]):
    """A ``ModelSource`` over ``gs://bucket/prefix/<N>/...``."""

    def __init__(self, uri: str, *, client: storage.Client | None = None, timeout: float = 60.0) -> None:
        bucket, prefix = split_gs_uri(uri)
        super().__init__("gs", bucket, prefix, GcsBucket(client, bucket, timeout=timeout))

    def list_objects(self, version: int) -> tuple[ObjectInfo, ...]:
        base = f"{self._prefix}{version}/"
        return tuple(
            ObjectInfo(
                name=blob.name[len(base) :],
                size=int(blob.size or 0),
                crc32c=blob.crc32c,
                updated=blob.updated.timestamp() if blob.updated else None,
            )
            for blob in self._store.objects(base)
        )


class GcsSink(BucketPrefix):
    """A ``ModelSink`` writing objects under ``gs://bucket/prefix/``; each write is one object write."""

    def __init__(self, uri: str, *, client: storage.Client | None = None, timeout: float = 120.0) -> None:
        bucket, prefix = split_gs_uri(uri)
        super().__init__("gs", bucket, prefix)
        self._bucket = GcsBucket(client, bucket, timeout=timeout)

    def upload(
        self,
        path: Path,
        name: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
        crc32c: str | None = None,
    ) -> None:
        self._bucket.upload(path, self._key(name), on_bytes)

    def write_bytes(self, name: str, data: bytes) -> None:
        self._bucket.write(self._key(name), data, "application/json")

    def exists(self, name: str) -> bool:
        return self._bucket.exists(self._key(name))

    def delete(self, name: str) -> None:
        self._bucket.delete(self._key(name))


def read_gs_uri(uri: str, *, client: storage.Client | None = None, generation: str | None = None) -> bytes:
    """The bytes of one object named by a full ``gs://bucket/path`` URI (of ``generation`` when given)."""
    bucket, name = _object_uri(uri)
    return GcsBucket(client, bucket).read(name, generation)


def stat_gs_uri(uri: str, *, client: storage.Client | None = None) -> str:
    """The generation of the object named by ``gs://bucket/path`` (cheap: no content is read)."""
    bucket, name = _object_uri(uri)
    return GcsBucket(client, bucket).generation(name)


def _object_uri(uri: str) -> tuple[str, str]:
    bucket, name = split_gs_uri(uri)
    if not name:
        raise ConfigError(f"{uri!r} names a bucket, not an object; write gs://bucket/path/to/file")
    return bucket, name.rstrip("/")


def _status_error(status: int, what: str, detail: str = "") -> SourceError:
    """An HTTP status from GCS as the agent's error, with the fix where there is one."""
    text = f"{what}: HTTP {status}" + (f" {detail.strip()}" if detail.strip() else "")
    denied = "grant the agent's identity roles/storage.objectViewer on the bucket"
    return status_error(status, text, thing="object", holder="bucket", denied=denied)


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """The one place google/requests/urllib3 errors become SourceErrors (gcs.py and gcs_records.py);
    local OSErrors pass through."""
    try:
        yield
    except SourceError:
        raise
    except api_exceptions.GoogleAPICallError as err:
        raise _status_error(int(err.code or 0), what, err.message or "") from err
    except auth_exceptions.DefaultCredentialsError as err:
        raise PermanentSourceError(
            f"{what}: no Google credentials found; use workload identity, set "
            "GOOGLE_APPLICATION_CREDENTIALS, or set STORAGE_EMULATOR_HOST for an emulator"
        ) from err
    except (auth_exceptions.TransportError, storage_exceptions.DataCorruption) as err:
        raise TransientSourceError(f"{what}: {err}") from err
    except auth_exceptions.GoogleAuthError as err:
        kind = TransientSourceError if getattr(err, "retryable", False) else PermanentSourceError
        raise kind(f"{what}: authentication failed: {err}") from err
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
        raise TransientSourceError(f"{what}: {type(err).__name__}: {err}") from err
    except urllib3.exceptions.HTTPError as err:
        raise TransientSourceError(f"{what}: {type(err).__name__}: {err}") from err
    except requests.RequestException as err:
        raise PermanentSourceError(f"{what}: {type(err).__name__}: {err}") from err
