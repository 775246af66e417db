"""gs:// ``RecordStore``: compare-and-swap on the object generation (``ifGenerationMatch``, 0 = create-only).

GCS checks the precondition on the server and answers 412 to a lost race, 429 to more than about one
mutation per object per second; ``gcs.mapped`` turns those into ``PreconditionFailed`` / ``RateLimitedError``.
A read is two requests (metadata, then the bytes of exactly that generation), so the bytes always belong to
the token returned. Library retries are off: a lost CAS must be re-decided, never re-sent.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import storage

from agent.adapters.sources.base import CREATE_ONLY, Expect, Record, RecordInfo
from agent.adapters.sources.gcs import make_client, mapped, split_gs_uri
from agent.adapters.sources.prefixes import BucketPrefix
from agent.core.errors import PreconditionFailed, TransientSourceError

_READ_ATTEMPTS = 3  # a record rewritten between the metadata and the media request is read again


class GcsRecordStore(BucketPrefix):
    """A ``RecordStore`` over ``gs://bucket/prefix/<name>``."""

    def __init__(self, uri: str, *, client: storage.Client | None = None, timeout: float = 30.0) -> None:
        bucket, prefix = split_gs_uri(uri)
        super().__init__("gs", bucket, prefix)
        self._client = client if client is not None else make_client()
        self._bucket = self._client.bucket(bucket)
        self._timeout = timeout

    def read(self, name: str) -> Record | None:
        for _ in range(_READ_ATTEMPTS):
            with mapped(f"reading {self._uri}/{name}"):
                blob = self._bucket.get_blob(self._key(name), **self._opts())
                if blob is None:
                    return None
            try:
                with mapped(f"reading {self._uri}/{name}"):
                    data = blob.download_as_bytes(if_generation_match=blob.generation, **self._opts())
            except PreconditionFailed:
                continue
            return Record(name, str(blob.generation), blob.updated.timestamp(), data)
        raise TransientSourceError(f"reading {self._uri}/{name}: rewritten {_READ_ATTEMPTS} times while read")

    def write(self, name: str, data: bytes, *, expect: Expect) -> str:
        generation = 0 if expect is CREATE_ONLY else int(expect)
        blob = self._bucket.blob(self._key(name))
        with mapped(f"writing {self._uri}/{name}"):
            blob.upload_from_string(
                data, content_type="application/json", if_generation_match=generation, **self._opts()
            )
        return str(blob.generation)

    def list(self, prefix: str = "") -> tuple[RecordInfo, ...]:
        base = self._prefix
        with mapped(f"listing {self._uri}/{prefix}"):
            blobs = self._client.list_blobs(
                self._bucket.name,
                prefix=base + prefix,
                fields="items(name,generation,updated),nextPageToken",
                **self._opts(),
            )
            infos = [RecordInfo(b.name[len(base) :], str(b.generation), b.updated.timestamp()) for b in blobs]
        return tuple(sorted(infos, key=lambda i: i.name))

    def delete(self, name: str, *, expect: str) -> None:
        with mapped(f"deleting {self._uri}/{name}"), suppress(api_exceptions.NotFound):
            self._bucket.blob(self._key(name)).delete(if_generation_match=int(expect), **self._opts())

    def _opts(self) -> dict[str, Any]:
        return {"retry": None, "timeout": self._timeout}
