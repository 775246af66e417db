"""gs:// specifics against the real fake-gcs-server: outages, request cost, emulator wiring, hostile names."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent.adapters.sources import open_source, read_uri, stat_uri
from agent.adapters.sources.base import ObjectNotFoundError
from agent.adapters.sources.gcs import GcsSink, GcsSource
from agent.adapters.sources.retrying import retry_policy
from agent.core.errors import TransientSourceError, UnsafePathError
from agent.infra.config import parse_completion
from agent.pipeline.discovery import Discovery
from agent.pipeline.staging import stage_version, verify_local
from agent.service.publish import publish
from tests.gcs import FakeGcsServer, Proxy, new_bucket, running_server

if (
    TYPE_CHECKING
):  # imported through agent.adapters.sources at run time, which quiets api_core's import warning
    from google.cloud import storage


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcsServer]:
    with running_server(tmp_path_factory.mktemp("gcs")) as started:
        yield started


@pytest.fixture(scope="module")
def client(server: FakeGcsServer) -> storage.Client:
    return server.client()


def _export(root: Path, files: int = 6, size: int = 300_000) -> Path:
    root.mkdir()
    (root / "saved_model.pb").write_bytes(b"graph")
    for i in range(files):
        (root / f"shard-{i}").write_bytes(os.urandom(size))
    return root


def test_a_server_stopped_mid_download_is_retried_until_it_returns(tmp_path: Path) -> None:
    """The emulator dies after the first file; downloads fail, are retried, and finish once it is back."""
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


def test_an_idle_poll_costs_one_request(
    server: FakeGcsServer, client: storage.Client, tmp_path: Path
) -> None:
    """After the first poll, polling a bucket with many versions is a single delimited listing."""
    uri = f"gs://{new_bucket(client)}/m"
    sink = GcsSink(uri, client=client)
    export = _export(tmp_path / "export", files=3, size=10)
    for version in range(1, 6):
        publish(export, uri, version, progress=False, sink=sink)
    with Proxy(server.port) as proxy:
        discovery = Discovery(
            GcsSource(uri, client=FakeGcsServer.client_for(proxy.url)), parse_completion("manifest")
        )
        assert len(discovery.poll().complete) == 5
        reads = [r for r in proxy.requests if "/download/" in r]
        listings = [r for r in proxy.requests if "delimiter=%2F" in r]
        assert (len(reads), len(listings)) == (5, 1), proxy.requests
        proxy.requests.clear()
        discovery.poll()
        assert len(proxy.requests) == 1, proxy.requests
        assert "delimiter=%2F" in proxy.requests[0]


def test_open_source_and_read_uri_honour_storage_emulator_host(
    server: FakeGcsServer, client: storage.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With STORAGE_EMULATOR_HOST set, gs:// URIs reach the emulator anonymously via the default client."""
    name = new_bucket(client)
    client.bucket(name).blob("golden/m.json").upload_from_string(b'{"instances": [1]}')
    client.bucket(name).blob("m/3/x").upload_from_string(b"x")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    assert read_uri(f"gs://{name}/golden/m.json") == b'{"instances": [1]}'
    assert open_source(f"gs://{name}/m").list_versions() == {3}
    with pytest.raises(ObjectNotFoundError, match="404"):
        read_uri(f"gs://{name}/golden/absent.json")


def test_object_names_with_dot_dot_fail_the_version(client: storage.Client, tmp_path: Path) -> None:
    """Objects like 1/../../escape (legal in GCS) make the version invalid; nothing lands outside."""
    name = new_bucket(client)
    for object_name in ("m/1/saved_model.pb", "m/1/../../escape", "m/1/_SUCCESS"):
        client.bucket(name).blob(object_name).upload_from_string(b"x")
    source = GcsSource(f"gs://{name}/m", client=client)
    found = Discovery(source, parse_completion("marker:_SUCCESS")).poll()
    assert "'../../escape'" in found.invalid[1]
    with pytest.raises(UnsafePathError, match="refusing object"):
        source.download(1, "../../escape", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_object_is_object_not_found(client: storage.Client, tmp_path: Path) -> None:
    """A 404 on download is ObjectNotFoundError (permanent), naming the object."""
    source = GcsSource(f"gs://{new_bucket(client)}/m", client=client)
    with pytest.raises(ObjectNotFoundError, match="m/1/nope"):
        source.download(1, "nope", tmp_path / "nope")


def test_golden_file_generation_moves_on_rewrite(
    server: FakeGcsServer, client: storage.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stat_uri reads only the object's generation; a rewrite gives a new one, and read_uri of that
    generation returns the new bytes. The emulator must refuse a generation that is gone, as GCS does, so
    a read pinned to a stale stat cannot pass here by accident."""
    name = new_bucket(client)
    blob = client.bucket(name).blob("golden/m.json")
    blob.upload_from_string(b'{"instances": [1]}')
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    uri = f"gs://{name}/golden/m.json"
    first = stat_uri(uri)
    assert stat_uri(uri) == first
    blob.upload_from_string(b'{"instances": [2]}')
    second = stat_uri(uri)
    assert second != first
    assert read_uri(uri, second) == b'{"instances": [2]}'
    with pytest.raises(ObjectNotFoundError):
        read_uri(uri, first)
    with pytest.raises(ObjectNotFoundError):
        stat_uri(f"gs://{name}/golden/absent.json")
