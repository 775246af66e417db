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
