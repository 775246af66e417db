"""s3:// (moto) and az:// (Azurite) end to end: ``tfs-agent publish`` as a process, the agent as a process
staging from the emulator, TF Serving answering with the promoted version; the golden file lives in the
same store. S3 reaches moto through the model's ``endpoint_url`` (no AWS_ENDPOINT_URL), Azure through
AZURE_STORAGE_CONNECTION_STRING."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.emulators import AWS_ENV, Azurite, MotoServer, running
from testkit.savedmodels import build_half_plus_two
from testkit.stack import GOLDEN, MODEL, Stack
from testkit.stores import AzureStore, S3Store, Store

pytestmark = pytest.mark.slow


@pytest.fixture(params=["s3", "az"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, dict[str, Any]]]:
    """A started emulator, its ``Store``, and what the agent and ``publish`` need to reach it."""
    if request.param == "s3":
        with running(MotoServer(tmp_path / "moto")) as moto:
            yield S3Store(moto), {"env": AWS_ENV, "endpoint_url": moto.url}
    else:
        with running(Azurite(tmp_path / "azurite")) as azurite:
            yield AzureStore(azurite), {"env": azurite.env(), "endpoint_url": None}


def _publish_cli(src: Path, uri: str, version: int, reach: dict[str, Any]) -> None:
    """The real ``tfs-agent publish`` in its own process."""
    args = [sys.executable, "-m", "agent", "publish", str(src), uri, "--version", str(version)]
    args += ["--model", MODEL, "--no-progress"]
    if reach["endpoint_url"]:
        args += ["--endpoint-url", reach["endpoint_url"]]
    done = subprocess.run(
        args, env={**os.environ, **reach["env"]}, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "manifest written last" in done.stdout


def test_publish_then_the_agent_serves_it_from_the_store(
    world: tuple[Store, dict[str, Any]], tmp_path: Path
) -> None:
    """v1 published to the store is validated on the store's golden file and serves; a half upload (no
    manifest) is never staged; v3 then replaces v1."""
    store, reach = world
    uri = store.new_uri(MODEL)
    store.put(uri, "golden/golden.json", json.dumps(GOLDEN).encode())
    extra = {"endpoint_url": reach["endpoint_url"]} if reach["endpoint_url"] else {}
    stack = Stack(
        tmp_path, source=uri, agent_env=dict(reach["env"]), golden=f"{uri}/golden/golden.json", **extra
    )
    try:
        stack.start()
        _publish_cli(build_half_plus_two(tmp_path / "build", 1), uri, 1, reach)
        stack.wait_serving(1)
        assert stack.server is not None
        assert stack.server.predict(MODEL, [1.0, 4.0])[0] == [2.5, 4.0]
        half = build_half_plus_two(tmp_path / "build", 2)
        store.put(uri, "2/saved_model.pb", (half / "saved_model.pb").read_bytes())  # no manifest
        _publish_cli(build_half_plus_two(tmp_path / "build", 3), uri, 3, reach)
        stack.wait_serving(3)
        assert not (stack.volume / MODEL / "2").exists()
        assert stack.model()["quarantined"] == {}
    finally:
        stack.close()
