"""A cloud SDK is imported only when a model uses its scheme: an agent built for one scheme loads only its
own store's library (checked in a fresh interpreter, as ``tfs-agent run`` builds it)."""

from __future__ import annotations

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
