"""s3:// ``RecordStore``: compare-and-swap on the ETag with S3's conditional PutObject.

``If-None-Match: *`` creates only (412 if the key exists), ``If-Match: <etag>`` replaces exactly what was
read (412 if it changed, 404 if it is gone); 409 ConditionalRequestConflict (another conditional write in
flight) is a lost race too. S3 checks these on the server since 2024, and moto refuses a stale or
create-only write the same way (tests/integration/test_record_stores.py proves it on the emulator). A read
is one GetObject: bytes and ETag come from one response. ``s3.mapped`` maps every error, as for the source.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from agent.adapters.sources.base import CREATE_ONLY, Expect, ObjectNotFoundError, Record, RecordInfo
from agent.adapters.sources.prefixes import BucketPrefix
from agent.adapters.sources.s3 import S3Bucket, mapped, split_s3_uri
from agent.adapters.sources.streams import crc32c_of_bytes
from agent.core.errors import PreconditionFailed


class S3RecordStore(BucketPrefix):
    """A ``RecordStore`` over ``s3://bucket/prefix/<name>``."""

    def __init__(self, uri: str, *, client: Any | None = None, endpoint_url: str | None = None) -> None:
        bucket, prefix = split_s3_uri(uri)
        super().__init__("s3", bucket, prefix)
        self._bucket = S3Bucket(client, bucket, endpoint_url=endpoint_url)
        self._client, self._name = self._bucket.client, bucket

    def read(self, name: str) -> Record | None:
        try:
            with mapped(f"reading {self._uri}/{name}"):
                got = self._client.get_object(Bucket=self._name, Key=self._key(name))
                data = bytes(got["Body"].read())
        except ObjectNotFoundError:
            return None
        return Record(name, str(got["ETag"]), got["LastModified"].timestamp(), data)

    def write(self, name: str, data: bytes, *, expect: Expect) -> str:
        condition = {"IfNoneMatch": "*"} if expect is CREATE_ONLY else {"IfMatch": str(expect)}
        try:
            with mapped(f"writing {self._uri}/{name}"):
                put = self._client.put_object(
                    Bucket=self._name,
                    Key=self._key(name),
                    Body=data,
                    ContentType="application/json",
                    ChecksumAlgorithm="CRC32C",
                    ChecksumCRC32C=crc32c_of_bytes(data),
                    **condition,
                )
        except ObjectNotFoundError as err:  # If-Match on a key deleted meanwhile
            if expect is CREATE_ONLY or "NoSuchBucket" in err.reason:
                raise
            raise PreconditionFailed(f"{err.reason} (expected ETag {expect}, found no object)") from err
        return str(put["ETag"])

    def list(self, prefix: str = "") -> tuple[RecordInfo, ...]:
        base = self._prefix
        infos = [
            RecordInfo(item["Key"][len(base) :], str(item["ETag"]), item["LastModified"].timestamp())
            for item in self._bucket.objects(base + prefix)
        ]
        return tuple(sorted(infos, key=lambda i: i.name))

    def delete(self, name: str, *, expect: str) -> None:
        with suppress(ObjectNotFoundError), mapped(f"deleting {self._uri}/{name}"):
            self._client.delete_object(Bucket=self._name, Key=self._key(name), IfMatch=expect)
