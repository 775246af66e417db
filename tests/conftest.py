"""Suite-wide rules: no ambient configuration leaks into a test, and stand-in-only tests step aside when the
suite runs against a stock tensorflow_model_server (TFS_BINARY)."""

from __future__ import annotations

import os

import pytest

from testkit.servers import skip_devserver_only

SCRUBBED = (
    "STORAGE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST",
    "POD_NAME",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
)


@pytest.fixture(autouse=True)
def _scrub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's TFS_AGENT_* or emulator settings must not change what a test sees."""
    for name in list(os.environ):
        if name.startswith("TFS_AGENT_") or name in SCRUBBED:
            monkeypatch.delenv(name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip behaviour the stock binary does not share when TFS_BINARY is set (whole suite, one place)."""
    skip_devserver_only(items)
