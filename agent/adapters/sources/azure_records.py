"""az:// ``RecordStore``: compare-and-swap on the blob's ETag.

A create-only write is an upload with ``overwrite=False`` (``If-None-Match: *``: 409 BlobAlreadyExists if the
blob exists), a replacement sends ``If-Match: <etag>`` (412 if it changed, 404 if it is gone); both are lost
races. Azure and Azurite check these on the server (tests/integration/test_record_stores.py proves it on
Azurite). A read is one ranged GET: bytes and ETag come from one response. ``azure.mapped`` maps every error.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobClient, BlobServiceClient

from agent.adapters.sources.azure import mapped, split_az_uri
from agent.adapters.sources.base import CREATE_ONLY, Expect, ObjectNotFoundError, Record, RecordInfo
from agent.adapters.sources.prefixes import BucketPrefix
from agent.core.errors import PreconditionFailed


class AzureRecordStore(BucketPrefix):
    """A ``RecordStore`` over ``az://container/prefix/<name>``, through ``service`` (azure.make_service)."""

    def __init__(self, uri: str, service: BlobServiceClient) -> None:
        container, prefix = split_az_uri(uri)
        super().__init__("az", container, prefix)
        self._container = service.get_container_client(container)

    def read(self, name: str) -> Record | None:
        try:
            with mapped(f"reading {self._uri}/{name}"):
                stream = self._container.get_blob_client(self._key(name)).download_blob(max_concurrency=1)
                data = bytes(stream.readall())
        except ObjectNotFoundError:
            return None
        props = stream.properties
        return Record(name, _token(props.etag), props.last_modified.timestamp(), data)

    def write(self, name: str, data: bytes, *, expect: Expect) -> str:
        blob = self._container.get_blob_client(self._key(name))
        what = f"writing {self._uri}/{name}"
        try:
            with mapped(what):
                done = self._upload(blob, data, expect, what)
        except ObjectNotFoundError as err:  # If-Match on a blob deleted meanwhile
            raise PreconditionFailed(f"{err.reason} (expected ETag {expect}, found no blob)") from err
        return _token(done["etag"])

    @staticmethod
    def _upload(blob: BlobClient, data: bytes, expect: Expect, what: str) -> dict[str, Any]:
        if expect is not CREATE_ONLY:
            return blob.upload_blob(
                data, overwrite=True, etag=_etag(expect), match_condition=MatchConditions.IfNotModified
            )
        try:
            return blob.upload_blob(data, overwrite=False)
        except ResourceExistsError as err:
            raise PreconditionFailed(f"{what}: HTTP 409 exists already (create-only write)") from err

    def list(self, prefix: str = "") -> tuple[RecordInfo, ...]:
        base = self._prefix
        with mapped(f"listing {self._uri}/{prefix}"):
            blobs = list(self._container.list_blobs(name_starts_with=base + prefix))
        infos = [RecordInfo(b.name[len(base) :], _token(b.etag), b.last_modified.timestamp()) for b in blobs]
        return tuple(sorted(infos, key=lambda i: i.name))

    def delete(self, name: str, *, expect: str) -> None:
        blob = self._container.get_blob_client(self._key(name))
        try:
            with suppress(ObjectNotFoundError), mapped(f"deleting {self._uri}/{name}"):
                blob.delete_blob(etag=_etag(expect), match_condition=MatchConditions.IfNotModified)
        except PreconditionFailed:
            with mapped(f"deleting {self._uri}/{name}"):
                if blob.exists():  # Azure answers 412, not 404, to a conditional delete of nothing
                    raise


def _token(etag: str | None) -> str:
    """The ETag without the quotes: listings give ``0x8D...``, responses ``"0x8D..."``; one token for both."""
    return str(etag or "").strip('"')


def _etag(token: str) -> str:
    return f'"{token}"'
