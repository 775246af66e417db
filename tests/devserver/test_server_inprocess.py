"""A whole DevServer in-process: start-up validation and a clean stop, without a process launch (B2, B10).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.ports import free_port, port_open
from testkit.savedmodels import build_half_plus_two
from tfs_devserver import config as cfg
from tfs_devserver.flags import Flags
from tfs_devserver.server import DevServer
from tfs_devserver.status import Code, ServingError


def _flags(**overrides: object) -> Flags:
    flags = Flags(port=free_port(), max_num_load_retries=0)
    for key, value in overrides.items():
        setattr(flags, key, value)
    return flags


def test_relative_base_path_fails_start_up_before_any_port() -> None:
    """B2/B10: single-model mode with a relative base path fails with the stock message; no port opens."""
    flags = _flags(model_name="m", model_base_path="models/m")
    server = DevServer(flags)
    try:
        with pytest.raises(ServingError) as error:
            server.start(cfg.single_model_config(flags.model_name, flags.model_base_path))
    finally:
        server.stop()
    assert (error.value.code, error.value.message) == (
        Code.INVALID_ARGUMENT,
        "Expected model m to have an absolute path or URI; got base_path()=models/m",
    )
    assert not port_open(flags.port)


def test_start_serve_stop(tmp_path: Path) -> None:
    """B2: once the initial model is AVAILABLE the ports open; stop closes them."""
    build_half_plus_two(tmp_path / "m", 1)
    flags = _flags(rest_api_port=free_port())
    server = DevServer(flags)
    try:
        server.start(cfg.single_model_config("m", str(tmp_path / "m")))
        assert port_open(flags.port)
        assert port_open(flags.rest_api_port)
        assert server.manager.available_versions("m") == [1]
    finally:
        server.stop()
    assert not port_open(flags.port)
