"""Fixtures shared by the integration tests: a real model server driven through the agent's client, and
one bucket emulator per scheme (fake-gcs-server, moto, Azurite) with a ``store`` fixture over every scheme."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.adapters.tfserving import config_text
from agent.adapters.tfserving.client import GrpcServingControl
from testkit.emulators import Azurite, MotoServer, running
from testkit.gcs import FakeGcsServer, running_server
from testkit.servers import ServerHandle, start_server
from testkit.stores import HTTP_SCHEMES, SCHEMES, AzureStore, FileStore, GcsStore, S3Store, Store

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


# ---- buckets: one running emulator per scheme for the whole session, started only if a test asks --------
@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcsServer]:
    with running_server(tmp_path_factory.mktemp("gcs")) as started:
        yield started


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with running(MotoServer(tmp_path_factory.mktemp("moto"))) as started:
        yield started


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with running(Azurite(tmp_path_factory.mktemp("azurite"))) as started:
        yield started


def store_for(scheme: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The ``Store`` for ``scheme``, starting its emulator on first use."""
    if scheme == "file":
        return FileStore(tmp_path / "buckets")
    if scheme == "gs":
        return GcsStore(request.getfixturevalue("gcs_emulator"))
    if scheme == "s3":
        return S3Store(request.getfixturevalue("moto"))
    return AzureStore(request.getfixturevalue("azurite"))


@pytest.fixture(params=SCHEMES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Every scheme in turn: the test runs once per kind of bucket."""
    return store_for(request.param, request, tmp_path)


@pytest.fixture(params=HTTP_SCHEMES)
def remote_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Every scheme reached over HTTP (gs, s3, az) in turn, for faults injected by a proxy."""
    return store_for(request.param, request, tmp_path)
