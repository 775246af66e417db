"""Bucket faults on every remote scheme (gs:// fake-gcs-server, s3:// moto, az:// Azurite): errors, timeouts
and cut-off bodies mid-download, request cost, emulator wiring, hostile names.

Faults come from a loopback proxy between the agent's adapter and the real emulator (tests/proxy.py), so the
same fault reaches each SDK the same way; what the agent promises must not depend on the store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.adapters.sources import open_source, read_uri, stat_uri
from agent.adapters.sources.base import ObjectNotFoundError
from agent.adapters.sources.gcs import GcsSink, GcsSource
from agent.adapters.sources.retrying import retry_policy
from agent.core.domain import MANIFEST_NAME, Manifest
from agent.core.errors import ConfigError, PermanentSourceError, TransientSourceError, UnsafePathError
from agent.infra.config_policy import parse_completion
from agent.pipeline.discovery import Discovery
from agent.pipeline.staging import stage_version, verify_local
from agent.service.publish import publish
from testkit.emulators import MotoServer
from testkit.gcs import new_bucket, running_server
from testkit.proxy import Fault, Proxy
from testkit.stores import Store

SHARD_GET = r"^GET .*shard-0"  # the download of one data file (not a listing, not a HeadObject)
ACCESS_FIX = {"gs": "roles/storage.objectViewer", "s3": "s3:GetObject", "az": "Storage Blob Data Reader"}


def _export(root: Path, files: int = 6, size: int = 300_000) -> Path:
    root.mkdir()
    (root / "saved_model.pb").write_bytes(b"graph")
    for i in range(files):
        (root / f"shard-{i}").write_bytes(os.urandom(size))
    return root


@pytest.fixture
def published(remote_store: Store, tmp_path: Path) -> tuple[str, Manifest]:
    """Version 1 of a small model, published through the agent's own sink."""
    uri = remote_store.new_uri()
    manifest = publish(_export(tmp_path / "export"), uri, 1, progress=False, sink=remote_store.sink(uri))
    return uri, manifest


@pytest.fixture
def proxy(remote_store: Store) -> Iterator[Proxy]:
    with Proxy(remote_store.port) as started:
        yield started


@pytest.mark.parametrize("fault", ["status", "truncate", "stall", "refuse"])
def test_a_fault_mid_download_is_retried_until_the_version_stages(
    remote_store: Store,
    published: tuple[str, Manifest],
    proxy: Proxy,
    tmp_path: Path,
    fault: Fault,
) -> None:
    """A 503, a body cut short, a stalled body (client timeout) or a dropped connection on a download is a
    TransientSourceError; staging retries it and ends with a verified copy."""
    uri, manifest = published
    proxy.inject(fault, match=SHARD_GET, times=2)
    failures: list[Exception] = []
    retry = retry_policy(initial=0.01, maximum=0.05, deadline=60, on_error=failures.append)
    # A stall ends only at the client's read timeout; other faults keep a loaded machine's margin.
    source = remote_store.source(uri, via=proxy.url, timeout=3 if fault == "stall" else 30)
    staged = stage_version(source, manifest, tmp_path / "v", concurrency=2, retry=retry)
    assert len(proxy.faults) == 2, proxy.faults
    assert sum("shard-0" in str(err) for err in failures) >= 2, failures
    assert all(isinstance(err, TransientSourceError) for err in failures), failures
    assert verify_local(tmp_path / "v", 1)
    assert staged.bytes == manifest.total_bytes


@pytest.mark.parametrize("fault", ["status", "truncate"])
def test_a_store_that_keeps_failing_gives_up_as_transient(
    remote_store: Store, published: tuple[str, Manifest], proxy: Proxy, tmp_path: Path, fault: Fault
) -> None:
    """503 or a cut-off body on every download: staging gives up at the retry deadline with a
    TransientSourceError (a later pass may succeed); nothing appears on the volume."""
    uri, manifest = published
    proxy.inject(fault, match=SHARD_GET, times=10_000)
    retry = retry_policy(initial=0.01, maximum=0.05, deadline=1)
    with pytest.raises(TransientSourceError, match="still failing after"):
        stage_version(remote_store.source(uri, via=proxy.url), manifest, tmp_path / "v", retry=retry)
    assert list((tmp_path / "v").iterdir()) == []


def test_access_denied_is_permanent_and_names_the_fix(
    remote_store: Store, published: tuple[str, Manifest], proxy: Proxy, tmp_path: Path
) -> None:
    """A 403 on a download fails at once (no retry) with the permission to grant."""
    uri, manifest = published
    proxy.inject("status", match=SHARD_GET, status=403)
    retry = retry_policy(initial=0.01, maximum=0.05, deadline=30)
    source = remote_store.source(uri, via=proxy.url)
    with pytest.raises(PermanentSourceError, match=ACCESS_FIX[remote_store.scheme]):
        stage_version(source, manifest, tmp_path / "v", concurrency=1, retry=retry)
    assert len(proxy.faults) == 1


def test_an_idle_poll_costs_one_request(remote_store: Store, proxy: Proxy, tmp_path: Path) -> None:
    """After the first poll (one manifest read per version), polling a bucket with many versions is a
    single delimited listing."""
    uri = remote_store.new_uri()
    sink = remote_store.sink(uri)
    export = _export(tmp_path / "export", files=3, size=10)
    for version in range(1, 6):
        publish(export, uri, version, progress=False, sink=sink)
    discovery = Discovery(remote_store.source(uri, via=proxy.url), parse_completion("manifest"))
    assert len(discovery.poll().complete) == 5
    assert sum(MANIFEST_NAME in r for r in proxy.requests) == 5, proxy.requests
    proxy.requests.clear()
    discovery.poll()
    assert len(proxy.requests) == 1, proxy.requests


def test_open_source_and_read_uri_find_the_store_through_its_standard_variables(
    remote_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STORAGE_EMULATOR_HOST (gs), AWS_ENDPOINT_URL with AWS_* credentials (s3) and
    AZURE_STORAGE_CONNECTION_STRING (az) lead the default clients to the emulator."""
    uri = remote_store.new_uri("m")
    golden = f"{uri}/golden.json"
    remote_store.put(uri, "golden.json", b'{"instances": [1]}')
    remote_store.put(uri, "3/x", b"x")
    for name, value in remote_store.env().items():
        monkeypatch.setenv(name, value)
    assert read_uri(golden) == b'{"instances": [1]}'
    assert open_source(uri).list_versions() == {3}
    with pytest.raises(ObjectNotFoundError, match="404"):
        read_uri(f"{uri}/absent.json")


# Azure (and Azurite) will not hold a blob name with '..' segments: the request is refused, so the agent can
# never see one there. The test checks the refusal, so it fails if that changes.
DOT_DOT_REFUSED = {"az"}


def test_object_names_with_dot_dot_fail_the_version(remote_store: Store, tmp_path: Path) -> None:
    """Objects like 1/../../escape (legal in GCS and S3) make the version invalid; nothing lands outside."""
    uri = remote_store.new_uri()
    remote_store.put(uri, "1/saved_model.pb", b"x")
    remote_store.put(uri, "1/_SUCCESS", b"")
    if remote_store.scheme in DOT_DOT_REFUSED:
        with pytest.raises(Exception, match=r"403|400|authenticate"):
            remote_store.put(uri, "1/../../escape", b"x")
        return
    remote_store.put(uri, "1/../../escape", b"x")
    source = remote_store.source(uri)
    found = Discovery(source, parse_completion("marker:_SUCCESS")).poll()
    assert "'../../escape'" in found.invalid[1]
    with pytest.raises(UnsafePathError, match="refusing object"):
        source.download(1, "../../escape", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_object_is_object_not_found(remote_store: Store, tmp_path: Path) -> None:
    """A 404 on download is ObjectNotFoundError (permanent), naming the object."""
    source = remote_store.source(remote_store.new_uri())
    with pytest.raises(ObjectNotFoundError, match="m/1/nope"):
        source.download(1, "nope", tmp_path / "nope")


def test_a_gcs_server_stopped_mid_download_is_retried_until_it_returns(tmp_path: Path) -> None:
    """fake-gcs-server dies after the first file; downloads fail, are retried, and finish once it is back
    (its filesystem backend keeps the data across the restart, which moto and Azurite in memory do not:
    the proxy's ``refuse`` fault stands in for them above)."""
    with running_server(tmp_path / "gcs", backend="filesystem") as server:
        gcs = server.client()
        uri = f"gs://{new_bucket(gcs)}/m"
        manifest = publish(
            _export(tmp_path / "export"), uri, 1, progress=False, sink=GcsSink(uri, client=gcs)
        )
        failures: list[Exception] = []

        def on_error(err: Exception) -> None:
            failures.append(err)
            if len(failures) == 3:
                server.start()

        stopped: list[str] = []

        def stop_after_first_file(path: str, size: int) -> None:
            if not stopped:
                stopped.append(path)
                server.stop()

        retry = retry_policy(initial=0.01, maximum=0.05, deadline=30, on_error=on_error)
        staged = stage_version(
            GcsSource(uri, client=gcs),
            manifest,
            tmp_path / "v",
            concurrency=1,
            retry=retry,
            progress=stop_after_first_file,
        )
        assert len(stopped) == 1
        assert len(failures) >= 3
        assert all(isinstance(err, TransientSourceError) for err in failures)
        assert verify_local(tmp_path / "v", 1)
        assert staged.bytes == manifest.total_bytes


@pytest.mark.parametrize("scheme", ["s3", "az"])
def test_missing_credentials_name_the_fix(
    scheme: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no credentials anywhere, s3:// fails permanently naming IRSA and the AWS variables, and az://
    fails at once naming AZURE_STORAGE_CONNECTION_STRING and the account URL."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT", raising=False)
    if scheme == "az":
        with pytest.raises(ConfigError, match=r"AZURE_STORAGE_CONNECTION_STRING.*endpoint_url"):
            open_source("az://models/m")
        return
    moto: MotoServer = request.getfixturevalue("moto")
    source = open_source("s3://models/m", endpoint_url=moto.url)
    with pytest.raises(PermanentSourceError, match="no AWS credentials found; use IRSA"):
        source.list_versions()


def test_golden_file_generation_moves_on_rewrite(
    remote_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stat_uri reads only the object's generation (GCS generation, S3/Azure ETag); a rewrite gives a new
    one, and read_uri of that generation returns the new bytes. The store must refuse a generation that is
    gone, so a read pinned to a stale stat cannot pass here by accident."""
    uri = remote_store.new_uri()
    remote_store.put(uri, "golden/m.json", b'{"instances": [1]}')
    for name, value in remote_store.env().items():
        monkeypatch.setenv(name, value)
    golden = f"{uri}/golden/m.json"
    first = stat_uri(golden)
    assert stat_uri(golden) == first
    remote_store.put(uri, "golden/m.json", b'{"instances": [2]}')
    second = stat_uri(golden)
    assert second != first
    assert read_uri(golden, second) == b'{"instances": [2]}'
    with pytest.raises(ObjectNotFoundError):
        read_uri(golden, first)
    with pytest.raises(ObjectNotFoundError):
        stat_uri(f"{uri}/golden/absent.json")
