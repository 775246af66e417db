"""A cloud SDK is imported only when a model uses its scheme: an agent built for one scheme loads only its
own store's library (checked in a fresh interpreter, as ``tfs-agent run`` builds it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from testkit.sdk_probe import probe

LOADED = {
    "file": [],
    "gs": ["google.cloud.storage"],
    "s3": ["boto3", "botocore"],
    "az": ["azure.storage.blob"],
}


@pytest.mark.parametrize("scheme", sorted(LOADED))
def test_an_agent_loads_only_the_sdk_of_the_schemes_it_uses(scheme: str, tmp_path: Path) -> None:
    """file:// loads no cloud SDK, gs:// only google-cloud-storage, s3:// only boto3, az:// only
    azure-storage-blob (never azure-identity with a connection string)."""
    assert probe(scheme, tmp_path)["sdks"] == LOADED[scheme]


@pytest.mark.parametrize(
    ("uri", "sdk", "extra"), [("s3://b/m", "boto3", "s3"), ("az://c/m", "azure.storage.blob", "azure")]
)
def test_a_missing_sdk_names_the_extra_to_install(
    uri: str, sdk: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without its SDK installed, an s3:// or az:// source is a ConfigError naming the pip extra."""
    from agent.adapters.sources import open_source
    from agent.core.errors import ConfigError

    monkeypatch.setitem(sys.modules, sdk, None)
    with pytest.raises(ConfigError, match=rf"pip install 'tfs-agent\[{extra}\]'"):
        open_source(uri)


@pytest.mark.parametrize(
    ("scheme", "source", "sink", "records"),
    [
        ("gs", "GcsSource", "GcsSink", "GcsRecordStore"),
        ("s3", "S3Source", "S3Sink", "S3RecordStore"),
        ("az", "AzureSource", "AzureSink", "AzureRecordStore"),
    ],
)
def test_each_cloud_scheme_opens_its_own_adapters(
    scheme: str, source: str, sink: str, records: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URI of each scheme opens that scheme's source, sink and record store on the same normalised URI
    (clients are built offline: an emulator address and test credentials, no request is sent)."""
    from agent.adapters.sources import open_record_store, open_sink, open_source
    from testkit.emulators import AWS_ENV, azurite_connection_string

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string("http://127.0.0.1:9"))
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    uri = f"{scheme}://bucket-1/models/m"
    opened = (open_source(f"{uri}/"), open_sink(uri), open_record_store(f"{uri}/_fleet/prod"))
    assert [type(adapter).__name__ for adapter in opened] == [source, sink, records]
    assert [adapter.uri for adapter in opened] == [uri, uri, f"{uri}/_fleet/prod"]
