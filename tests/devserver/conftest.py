"""Fixtures for the devserver suite: the ``devserver_only`` skip when the stock binary is under test."""

from __future__ import annotations

import pytest

from tests.servers import skip_devserver_only


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip behaviour the stock binary does not share when TFS_BINARY is set."""
    skip_devserver_only(items)
