"""Fixtures shared by the integration tests that drive a real model server through the agent's client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.adapters.tfserving import config_text
from agent.adapters.tfserving.client import GrpcServingControl
from tests.servers import ServerHandle, start_server

# Few, short retries (docs/tfserving-behaviour.md#b12): a corrupt version fails in seconds, not every reload.
SERVER_FLAGS = ("--model_config_file_poll_wait_seconds=1", "--max_num_load_retries=0")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One model server per test module, started on an empty model list."""
    handle = start_server(
        tmp_path_factory.mktemp("tfs"),
        model_config=config_text.render([]),
        rest=False,
        extra_flags=SERVER_FLAGS,
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def control(server: ServerHandle) -> Iterator[GrpcServingControl]:
    """The agent's gRPC client, owning the server's config file."""
    with GrpcServingControl(
        server.grpc_address, server.workdir / "models.config", rpc_timeout=30, reload_timeout=120
    ) as client:
        yield client
