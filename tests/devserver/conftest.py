"""Fixtures for the devserver suite.

One server process is shared by the whole session (``shared_server``): every launch costs a TensorFlow import,
and ReloadConfig replaces the whole config, so each test simply sends the config it needs (with model names of
its own) and ignores what earlier tests left behind. Tests needing other flags start their own server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.servers import ServerHandle, model_config_list, running_server

# Stock retries (5 x 60 s) would make every failing load in the suite take five minutes
# (docs/tfserving-behaviour.md#b12).
FAST_FAILURE_FLAGS = ("--max_num_load_retries=0",)


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A server started on an empty model list, REST and Prometheus on, 1 s polling, no load retries."""
    workdir = tmp_path_factory.mktemp("shared-server")
    with running_server(
        workdir, model_config=model_config_list(), extra_flags=FAST_FAILURE_FLAGS, monitoring=True
    ) as server:
        yield server
