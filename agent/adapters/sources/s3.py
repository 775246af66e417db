"""s3:// through boto3, for AWS S3 and S3-compatible stores (MinIO, Ceph, R2, ...).

Credentials and region come the standard AWS way (IRSA / pod identity, instance profile, ``AWS_*`` env vars,
``~/.aws``); the endpoint too (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, honoured by botocore itself),
unless a model's ``endpoint_url`` overrides it. A non-AWS endpoint is addressed path-style
(``http://host/bucket/key``), which every S3-compatible store serves. botocore's own retries are off:
staging retries ``TransientSourceError`` with the one policy every source shares. Uploads carry a CRC32C
computed here (google-crc32c: botocore computes CRC32C only with awscrt) sent as ``ChecksumCRC32C`` with
``ChecksumAlgorithm="CRC32C"``, so S3 refuses bytes that differ from the manifest's checksum (BadDigest) and
reports that same value back. Every botocore error becomes a ``SourceError`` in ``mapped``, only there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import urllib3
from botocore import exceptions as boto_exceptions
from botocore.config import Config

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
    PermanentSourceError,
    PreconditionFailed,
    SourceError,
    TransientSourceError,
)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "InternalError", "ServiceUnavailable"}
)
# 409 ConditionalRequestConflict: another conditional write to the key was in flight; re-read and re-decide.
_LOST_RACE_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_HEADS = 8  # HeadObject requests in flight while listing a version's checksums
_MAX_PUT = 5 * 2**30  # S3's limit for one PutObject; larger files would need a multipart upload


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b/")``; the prefix is empty or ends with '/'."""
    return split_bucket_uri(uri, "s3", _BUCKET, "3-63 lowercase letters, digits, - .")


def make_client(
    endpoint_url: str | None = None, *, session: boto3.session.Session | None = None, timeout: float = 60.0
) -> Any:
    """An S3 client: standard AWS credentials and region, ``endpoint_url`` over the SDK's own endpoint."""
    with mapped("creating the S3 client"):
        session = session if session is not None else boto3.session.Session()
        client = session.client("s3", endpoint_url=endpoint_url, config=_config(timeout, "auto"))
        if not _is_aws(client.meta.endpoint_url):
            client = session.client(
                "s3", endpoint_url=client.meta.endpoint_url, config=_config(timeout, "path")
            )
    return client


def _config(timeout: float, addressing: str) -> Config:
    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout,
        read_timeout=timeout,
        max_pool_connections=POOL_SIZE,
        s3={"addressing_style": addressing},
        # Checksums only where we send them (uploads): no CRC32 computed over every small request.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _is_aws(endpoint: str) -> bool:
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


class S3Bucket:
    """Object operations on one bucket, each mapped to the agent's errors (``client``: None for
    ``make_client(endpoint_url)``'s)."""

    def __init__(self, client: Any | None, name: str, *, endpoint_url: str | None = None) -> None:
        self.client = client if client is not None else make_client(endpoint_url)
        self.name = name

    def prefixes(self, prefix: str) -> list[str]:
        """The "sub-folders" directly under ``prefix``: one delimited listing (one request per 1000)."""
        with mapped(f"listing s3://{self.name}/{prefix}"):
            found: list[str] = []
            for page in self._pages(Prefix=prefix, Delimiter="/"):
                found += [p["Prefix"] for p in page.get("CommonPrefixes", ())]
            return sorted(found)

    def objects(self, prefix: str) -> list[dict[str, Any]]:
        """Every object under ``prefix`` as ListObjectsV2 reports it (Key, Size, LastModified)."""
        with mapped(f"listing s3://{self.name}/{prefix}"):
            return [item for page in self._pages(Prefix=prefix) for item in page.get("Contents", ())]

    def checksums(self, keys: list[str]) -> dict[str, str | None]:
        """The full-object CRC32C S3 stores for each key (HeadObject, ``_HEADS`` at a time); None for an
        object stored without one, or with a composite (per-part) checksum that is not the file's crc32c."""
        with ThreadPoolExecutor(max_workers=_HEADS, thread_name_prefix="s3-head") as pool:
            return dict(zip(keys, pool.map(self._checksum, keys), strict=True))

    def _checksum(self, key: str) -> str | None:
        with mapped(f"checking s3://{self.name}/{key}"):
            head = self.client.head_object(Bucket=self.name, Key=key, ChecksumMode="ENABLED")
        value = head.get("ChecksumCRC32C")
        composite = head.get("ChecksumType") == "COMPOSITE" or "-" in str(value or "")
        return None if value is None or composite else str(value)

    def download(self, key: str, dest: Path) -> str:
        """Stream the object to ``dest``; return the crc32c of the bytes written."""
        with mapped(f"downloading s3://{self.name}/{key}"):
            body = self.client.get_object(Bucket=self.name, Key=key)["Body"]
            try:
                return write_chunks(body.iter_chunks(CHUNK_SIZE), dest)
            finally:
                body.close()

    def read(self, key: str, etag: str | None = None) -> bytes:
        """A small object's bytes (of exactly ``etag`` when given: the one a stat saw; a newer object is
        ObjectNotFoundError, as GCS answers for a generation that is gone)."""
        what = f"reading s3://{self.name}/{key}"
        condition = {"IfMatch": etag} if etag else {}
        try:
            with mapped(what):
                body = self.client.get_object(Bucket=self.name, Key=key, **condition)["Body"]
        except PreconditionFailed as err:
            raise ObjectNotFoundError(f"{what}: ETag {etag} is gone (rewritten since)") from err
        with mapped(what):
            try:
                return bytes(body.read())
            finally:
                body.close()

    def put(self, key: str, body: Any, crc32c: str, *, length: int) -> None:
        """One PutObject carrying the body's CRC32C: S3 stores the object only if the bytes match it."""
        if length > _MAX_PUT:
            raise PermanentSourceError(
                f"s3://{self.name}/{key}: {length} bytes is above S3's 5 GiB single-upload limit; "
                "split the variables into smaller shards"
            )
        with mapped(f"writing s3://{self.name}/{key}"):
            self.client.put_object(
                Bucket=self.name,
                Key=key,
                Body=body,
                ContentLength=length,
                ChecksumAlgorithm="CRC32C",
                ChecksumCRC32C=crc32c,
            )

    def etag(self, key: str) -> str:
        """The object's ETag: one HeadObject; it changes whenever the object is rewritten."""
        with mapped(f"checking s3://{self.name}/{key}"):
            return str(self.client.head_object(Bucket=self.name, Key=key)["ETag"])

    def exists(self, key: str) -> bool:
        try:
            with mapped(f"checking s3://{self.name}/{key}"):
                self.client.head_object(Bucket=self.name, Key=key)
        except ObjectNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        with mapped(f"deleting s3://{self.name}/{key}"):
            self.client.delete_object(Bucket=self.name, Key=key)

    def _pages(self, **query: str) -> Iterator[dict[str, Any]]:
        pages: Iterator[dict[str, Any]] = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, **query
        )
        return pages


class S3Source(BucketSource[S3Bucket]):
    """A ``ModelSource`` over ``s3://bucket/prefix/<N>/...``. ListObjectsV2 names an object's checksum
    algorithm but not its value, so with ``listing_checksums`` a version's listing adds one HeadObject per
    object stored with a CRC32C: marker and quiet completion build the manifest from it. With a manifest
    (the default mode; the agent opens the source with ``listing_checksums=False``) listings skip them and
    report crc32c None: staging checks the downloaded bytes against the manifest anyway, and the HEADs would
    cost more than the download of a small version (benchmarks/staging.py)."""

    def __init__(
        self,
        uri: str,
        *,
        client: Any | None = None,
        endpoint_url: str | None = None,
        listing_checksums: bool = True,
    ) -> None:
        bucket, prefix = split_s3_uri(uri)
        super().__init__("s3", bucket, prefix, S3Bucket(client, bucket, endpoint_url=endpoint_url))
        self._listing_checksums = listing_checksums

    def list_objects(self, version: int) -> tuple[ObjectInfo, ...]:
        base = f"{self._prefix}{version}/"
        items = self._store.objects(base)
        checked = [i["Key"] for i in items if "CRC32C" in i.get("ChecksumAlgorithm", ())]
        crcs = self._store.checksums(checked) if self._listing_checksums else {}
        return tuple(
            ObjectInfo(
                name=item["Key"][len(base) :],
                size=int(item.get("Size", 0)),
                crc32c=crcs.get(item["Key"]),
                updated=item["LastModified"].timestamp() if item.get("LastModified") else None,
            )
            for item in items
        )


class S3Sink(ChecksummedSink):
    """A ``ModelSink`` writing objects under ``s3://bucket/prefix/``; each write is one PutObject carrying
    the file's CRC32C."""

    def __init__(self, uri: str, *, client: Any | None = None, endpoint_url: str | None = None) -> None:
        bucket, prefix = split_s3_uri(uri)
        super().__init__("s3", bucket, prefix, S3Bucket(client, bucket, endpoint_url=endpoint_url))


def read_s3_uri(uri: str, *, endpoint_url: str | None = None, generation: str | None = None) -> bytes:
    """The bytes of one object named by a full ``s3://bucket/key`` URI (of ETag ``generation`` if given)."""
    bucket, key = _object_uri(uri)
    return S3Bucket(None, bucket, endpoint_url=endpoint_url).read(key, generation)


def stat_s3_uri(uri: str, *, endpoint_url: str | None = None) -> str:
    """The ETag of the object named by ``s3://bucket/key`` (cheap: no content is read)."""
    bucket, key = _object_uri(uri)
    return S3Bucket(None, bucket, endpoint_url=endpoint_url).etag(key)


def _object_uri(uri: str) -> tuple[str, str]:
    bucket, key = split_s3_uri(uri)
    if not key:
        raise ConfigError(f"{uri!r} names a bucket, not an object; write s3://bucket/path/to/file")
    return bucket, key.rstrip("/")


def _client_error(err: boto_exceptions.ClientError, what: str) -> SourceError:
    """An S3 error response as the agent's error, with the fix where there is one."""
    error = err.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    text = f"{what}: HTTP {status} {code} {error.get('Message', '')}".rstrip()
    return status_error(
        status,
        text,
        thing="object",
        holder="bucket",
        denied="allow the agent's role s3:GetObject and s3:ListBucket on the bucket "
        "(s3:PutObject for publish)",
        not_found=code in _NOT_FOUND_CODES,
        lost_race=code in _LOST_RACE_CODES,
        rate_limited=code == "SlowDown",
        transient=code in _TRANSIENT_CODES,
    )


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """The one place botocore/urllib3 errors become SourceErrors (s3.py and s3_records.py); local OSErrors
    pass through."""
    try:
        yield
    except SourceError:
        raise
    except boto_exceptions.ClientError as err:
        raise _client_error(err, what) from err
    except (boto_exceptions.NoCredentialsError, boto_exceptions.PartialCredentialsError) as err:
        raise PermanentSourceError(
            f"{what}: no AWS credentials found; use IRSA or pod identity, an instance profile, or set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        ) from err
    except boto_exceptions.ParamValidationError as err:
        raise PermanentSourceError(f"{what}: {err}") from err
    except (
        boto_exceptions.ConnectionError,
        boto_exceptions.HTTPClientError,
        boto_exceptions.IncompleteReadError,
        boto_exceptions.ResponseStreamingError,
        boto_exceptions.ChecksumError,
    ) as err:
        raise TransientSourceError(f"{what}: {type(err).__name__}: {err}") from err
    except urllib3.exceptions.HTTPError as err:
        raise TransientSourceError(f"{what}: {type(err).__name__}: {err}") from err
    except boto_exceptions.BotoCoreError as err:
        raise PermanentSourceError(f"{what}: {type(err).__name__}: {err}") from err
