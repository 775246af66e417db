"""Checksums on s3:// and az://: what the store records, and the corruption the agent must catch itself
where the emulator checks less than the real service.

Measured: moto stores whatever ``x-amz-checksum-crc32c`` it is sent (real S3 answers BadDigest), and Azure
keeps no CRC32C at all (Azurite neither), so on both the only check that always runs is the agent's own
crc32c of the downloaded bytes against the manifest. S3's listing carries no checksum values, so only
marker and quiet completion pay a HeadObject per object for them; manifest mode does not (counted through a
proxy in front of moto).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.adapters.sources import open_source
from agent.adapters.sources.azure import CRC32C_METADATA
from agent.adapters.sources.retrying import retry_policy
from agent.adapters.sources.streams import crc32c_of_bytes
from agent.core.domain import FileEntry, Manifest
from agent.core.errors import ChecksumMismatchError
from agent.pipeline.staging import stage_version, verify_local
from agent.service.publish import publish
from testkit.emulators import AWS_ENV, Azurite, MotoServer
from testkit.proxy import Proxy
from testkit.stores import AzureStore, S3Store

FAST = retry_policy(initial=0.001, maximum=0.01, deadline=5)


@pytest.fixture
def s3(moto: MotoServer) -> S3Store:
    return S3Store(moto)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's test credentials in the standard variables, for sources made by ``open_source`` as the agent
    makes them."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def moto_proxy(moto: MotoServer) -> Iterator[Proxy]:
    """A request-counting proxy in front of moto."""
    with Proxy(moto.port) as started:
        yield started


@pytest.fixture
def az(azurite: Azurite) -> AzureStore:
    return AzureStore(azurite)


def _export(root: Path) -> Path:
    root.mkdir()
    (root / "saved_model.pb").write_bytes(b"graph")
    (root / "variables.data").write_bytes(os.urandom(200_000))
    return root


def _split(uri: str) -> tuple[str, str]:
    bucket, prefix = uri.split("://", 1)[1].split("/", 1)
    return bucket, prefix


def test_publish_to_s3_stores_the_manifest_crc32c_as_s3s_own_checksum(s3: S3Store, tmp_path: Path) -> None:
    """Every object ``publish`` writes carries S3's CRC32C checksum, equal to the manifest's entry."""
    uri = s3.new_uri()
    manifest = publish(_export(tmp_path / "export"), uri, 1, progress=False, sink=s3.sink(uri))
    bucket, prefix = _split(uri)
    for entry in manifest.files:
        head = s3.client.head_object(Bucket=bucket, Key=f"{prefix}/1/{entry.path}", ChecksumMode="ENABLED")
        assert head["ChecksumCRC32C"] == entry.crc32c
    listed = {o.name: o.crc32c for o in s3.source(uri).list_objects(1)}
    assert {f.path: listed[f.path] for f in manifest.files} == {f.path: f.crc32c for f in manifest.files}


def test_moto_keeps_a_wrong_crc32c_so_the_agent_checks_the_bytes_itself(s3: S3Store, tmp_path: Path) -> None:
    """An object overwritten with other bytes but the manifest's crc32c header is accepted by moto (real S3
    would refuse it), so the listing agrees with the manifest; staging still fails on the bytes' crc32c."""
    uri = s3.new_uri()
    manifest = publish(_export(tmp_path / "export"), uri, 1, progress=False, sink=s3.sink(uri))
    entry = _entry(manifest, "variables.data")
    bucket, prefix = _split(uri)
    forged = os.urandom(entry.size)
    s3.client.put_object(
        Bucket=bucket,
        Key=f"{prefix}/1/{entry.path}",
        Body=forged,
        ChecksumAlgorithm="CRC32C",
        ChecksumCRC32C=entry.crc32c,
    )
    assert crc32c_of_bytes(forged) != entry.crc32c
    assert {o.name: o.crc32c for o in s3.source(uri).list_objects(1)}[entry.path] == entry.crc32c
    with pytest.raises(ChecksumMismatchError, match=r"variables\.data: crc32c .* differs"):
        stage_version(s3.source(uri), manifest, tmp_path / "v", retry=FAST)
    assert list((tmp_path / "v").iterdir()) == []


@pytest.mark.parametrize("listing_checksums", [False, True], ids=["manifest", "marker-or-quiet"])
@pytest.mark.usefixtures("aws_credentials")
def test_s3_listings_head_objects_only_where_completion_needs_their_checksums(
    s3: S3Store, moto_proxy: Proxy, tmp_path: Path, listing_checksums: bool
) -> None:
    """Staging a published version lists it once. In manifest mode (the source opened as the agent opens it
    then) that listing sends no HeadObject: the manifest has the checksums and the downloaded bytes are
    checked against it; marker and quiet completion build the manifest from the listing, one HeadObject per
    object stored with a CRC32C."""
    uri = s3.new_uri()
    manifest = publish(_export(tmp_path / "export"), uri, 1, progress=False, sink=s3.sink(uri))
    bucket, prefix = _split(uri)
    stored = s3.client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/1/")["KeyCount"]
    source = open_source(uri, endpoint_url=moto_proxy.url, listing_checksums=listing_checksums)
    staged = stage_version(source, manifest, tmp_path / "v", retry=FAST)
    heads = [r for r in moto_proxy.requests if r.startswith("HEAD ")]
    assert len(heads) == (stored if listing_checksums else 0), heads
    listings = [r for r in moto_proxy.requests if r.startswith("GET ") and "list-type=2" in r]
    assert len(listings) == 1, moto_proxy.requests
    assert verify_local(tmp_path / "v", 1)
    assert staged.bytes == manifest.total_bytes


@pytest.mark.usefixtures("aws_credentials")
def test_s3_manifest_mode_still_catches_bytes_changed_after_publishing(s3: S3Store, tmp_path: Path) -> None:
    """Without the listing's checksums (manifest mode), an object rewritten with other bytes of the same size
    passes the listing check, and staging fails on the downloaded bytes' crc32c; nothing is installed."""
    uri = s3.new_uri()
    manifest = publish(_export(tmp_path / "export"), uri, 1, progress=False, sink=s3.sink(uri))
    entry = _entry(manifest, "variables.data")
    s3.put(uri, f"1/{entry.path}", os.urandom(entry.size))
    source = open_source(uri, endpoint_url=s3.server.url, listing_checksums=False)
    assert {o.name: o.crc32c for o in source.list_objects(1)}[entry.path] is None
    with pytest.raises(ChecksumMismatchError, match=r"variables\.data: crc32c .* differs"):
        stage_version(source, manifest, tmp_path / "v", retry=FAST)
    assert list((tmp_path / "v").iterdir()) == []


def test_publish_to_azure_records_the_crc32c_in_blob_metadata(az: AzureStore, tmp_path: Path) -> None:
    """Azure keeps no CRC32C, so ``publish`` stores the manifest's crc32c as blob metadata and listings
    report it."""
    uri = az.new_uri()
    manifest = publish(_export(tmp_path / "export"), uri, 1, progress=False, sink=az.sink(uri))
    listed = {o.name: o.crc32c for o in az.source(uri).list_objects(1)}
    assert {f.path: listed[f.path] for f in manifest.files} == {f.path: f.crc32c for f in manifest.files}


def test_azure_bytes_changed_under_unchanged_metadata_are_caught_by_the_agent(
    az: AzureStore, tmp_path: Path
) -> None:
    """A blob rewritten with other bytes of the same size but the old crc32c metadata passes the listing
    check (Azure verifies nothing against it); staging fails on the downloaded bytes' crc32c."""
    uri = az.new_uri()
    manifest = publish(_export(tmp_path / "export"), uri, 1, progress=False, sink=az.sink(uri))
    entry = _entry(manifest, "variables.data")
    container, prefix = _split(uri)
    az.service.get_container_client(container).upload_blob(
        f"{prefix}/1/{entry.path}",
        os.urandom(entry.size),
        overwrite=True,
        metadata={CRC32C_METADATA: entry.crc32c},
    )
    with pytest.raises(ChecksumMismatchError, match=r"variables\.data: crc32c .* differs"):
        stage_version(az.source(uri), manifest, tmp_path / "v", retry=FAST)
    assert list((tmp_path / "v").iterdir()) == []


def _entry(manifest: Manifest, path: str) -> FileEntry:
    return next(f for f in manifest.files if f.path == path)
