"""Process-level behaviour: flags (B1), start-up rules (B2), labels at start-up (B13), polling (B7, B8).

Each test starts its own server (these behaviours are about how the process starts or which flags it got).
Runs against the devserver, or the stock binary with TFS_BINARY set.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import socket
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from testkit.poll import poll_until
from testkit.ports import free_port, port_open
from testkit.savedmodels import build_gated_model, build_half_plus_two, corrupt_savedmodel, write_warmup
from testkit.servers import ServerHandle, model_config, model_config_list, running_server, start_server
from tests.devserver.helpers import Background, Gate, assert_rpc_error, gated_request


def _failed_start(server: ServerHandle) -> str:
    assert server.wait_exit() != 0
    return server.output_text()


def test_flags_unknown_spaced_socket_and_retries(tmp_path: Path) -> None:
    """B1/B14: unknown flags are ignored, ``--name value`` works, a stale Unix socket is replaced, and a
    failing load stays LOADING through its retries before END."""
    base = tmp_path / "m"
    build_half_plus_two(base, 1)
    sock_path = tmp_path / "tfs.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_path))
    stale.close()  # leaves the socket file behind, like a crashed server
    flags = [
        "--no_such_flag=1",
        "--max_num_load_retries",
        "1",
        "--load_retry_interval_micros=1500000",
        f"--grpc_socket_path={sock_path}",
    ]
    with running_server(tmp_path, model_name="m", model_base_path=base, extra_flags=flags) as server:
        assert "unknown argument: --no_such_flag=1" in server.output_text()
        with grpc.insecure_channel(f"unix:{sock_path}") as channel:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = "m"
            response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
            assert [s.state for s in response.model_version_status] == [30]
        bad = tmp_path / "bad"
        corrupt_savedmodel(build_half_plus_two(bad, 1))
        pending = Background(lambda: server.reload(model_config_list(model_config("bad", bad))))
        server.wait_for_state("bad", 1, "LOADING")
        assert pending.running()
        with pytest.raises(grpc.RpcError):
            pending.result()
        assert server.status("bad")[1][0] == "END"


def test_failed_initial_load_exits_nonzero(tmp_path: Path) -> None:
    """B2: an initial model that fails to load stops the process with ``Failed to start server``."""
    base = tmp_path / "m"
    corrupt_savedmodel(build_half_plus_two(base, 1))
    server = start_server(
        tmp_path,
        model_name="m",
        model_base_path=base,
        extra_flags=["--max_num_load_retries=0"],
        wait_ready=False,
    )
    output = _failed_start(server)
    assert "Failed to start server. Error: " in output
    assert "Can't parse" in output


def test_unparsable_config_exits_with_parser_reason(tmp_path: Path) -> None:
    """B2: a config file that does not parse prints the parser's line:column reason to stderr and exits."""
    config = 'model_config_list {\n  config {\n    nme: "m"\n  }\n}\n'
    server = start_server(tmp_path, model_config=config, wait_ready=False)
    _failed_start(server)
    stderr = server.stderr_text()
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in stderr
    assert "3:" in stderr.split("Error parsing text-format tensorflow.serving.ModelServerConfig", 1)[1]


def test_no_port_listens_until_every_initial_model_is_available(tmp_path: Path) -> None:
    """B2: ports stay closed while a model warms up and while another's base path is missing (it waits)."""
    warm, missing = tmp_path / "warm", tmp_path / "missing"
    gate = Gate(tmp_path / "gate")
    write_warmup(build_gated_model(warm, 1), [gated_request("warm", gate)])
    config = model_config_list(model_config("warm", warm), model_config("late", missing))
    server = start_server(tmp_path, model_config=config, wait_ready=False)
    ports = [p for p in (server.grpc_port, server.rest_port) if p]
    try:
        # One missing base path fails the whole poll, so nothing loads yet; the process waits.
        poll_until(lambda: "Could not find base path" in server.stderr_text(), what="missing base path")
        assert server.process.poll() is None
        assert not any(port_open(p) for p in ports)
        build_half_plus_two(tmp_path / "staging", 1)
        missing.mkdir()
        (tmp_path / "staging" / "1").rename(missing / "1")
        gate.wait_started()
        assert not any(port_open(p) for p in ports)
        gate.open()
        server.wait_ready()
        assert server.status("warm")[1][0] == "AVAILABLE"
        assert server.status("late")[1][0] == "AVAILABLE"
    finally:
        server.stop()


def test_startup_labels_need_the_flag(tmp_path: Path) -> None:
    """B13/B2: start-up config labels fail start-up without --allow_version_labels_for_unavailable_models."""
    base = tmp_path / "m"
    build_half_plus_two(base, 1)
    config = model_config_list(model_config("m", base, labels={"stable": 1}))
    server = start_server(tmp_path, model_config=config, wait_ready=False)
    output = _failed_start(server)
    assert "Failed to start server. Error: " in output
    assert (
        "Request to assign label to version 1 of model m, which is not currently available for inference"
        in output
    )


def test_labels_with_the_flag(tmp_path: Path) -> None:
    """B13: with the flag, start-up labels work; only new or unchanged labels may name unloaded versions."""
    base = tmp_path / "m"
    build_half_plus_two(base, 1, a=1.0)
    build_half_plus_two(base, 2, a=2.0)
    start = model_config_list(model_config("m", base, versions=[1], labels={"stable": 1}))
    flags = ["--allow_version_labels_for_unavailable_models", "--max_num_load_retries=0"]
    with running_server(tmp_path, model_config=start, extra_flags=flags) as server:
        assert server.predict("m", [1.0], label="stable") == ([3.0], 1)
        server.reload(
            model_config_list(model_config("m", base, versions=[1], labels={"stable": 1, "canary": 2}))
        )
        assert_rpc_error(
            lambda: server.predict("m", [1.0], label="canary"),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(m, 2)",
        )
        assert_rpc_error(
            lambda: server.reload(
                model_config_list(model_config("m", base, versions=[1], labels={"stable": 2}))
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "Request to assign label to version 2 of model m, which is not currently available for inference",
        )
        server.reload(
            model_config_list(model_config("m", base, versions=[1, 2], labels={"stable": 1, "canary": 2}))
        )
        server.wait_for_state("m", 2, "AVAILABLE")
        assert server.predict("m", [1.0], label="canary") == ([4.0], 2)


def test_poll_zero_reads_the_file_system_once(tmp_path: Path) -> None:
    """B7: with --file_system_poll_wait_seconds=0 new versions never load and adding a model by RPC hangs.
    Also B1: a REST port equal to --port is skipped with an error, gRPC still serves."""
    base, other = tmp_path / "m", tmp_path / "n"
    build_half_plus_two(base, 1)
    build_half_plus_two(other, 1)
    port = free_port()
    flags = [f"--rest_api_port={port}"]
    with running_server(
        tmp_path,
        model_name="m",
        model_base_path=base,
        poll_seconds=0,
        rest=False,
        extra_flags=flags,
        grpc_port=port,
    ) as server:
        assert "cannot be same as grpc_port" in server.stderr_text()
        build_half_plus_two(base, 2)
        config = model_config_list(model_config("m", base), model_config("n", other))
        assert_rpc_error(lambda: server.reload(config, timeout=2.5), grpc.StatusCode.DEADLINE_EXCEEDED)
        assert server.status("m") == {1: ("AVAILABLE", 0, "")}
        assert server.status("n") == {}


def test_config_file_wins_over_rpc(tmp_path: Path) -> None:
    """B8: with --model_config_file_poll_wait_seconds the file is re-read and wins over ReloadConfig."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for base in (a, b, c):
        build_half_plus_two(base, 1)
    flags = ["--model_config_file_poll_wait_seconds=1"]
    with running_server(
        tmp_path, model_config=model_config_list(model_config("a", a)), extra_flags=flags
    ) as server:
        server.reload(model_config_list(model_config("a", a), model_config("b", b)))
        assert server.status("b")[1][0] == "AVAILABLE"
        server.wait_for_state("b", 1, "END")
        config_file = server.workdir / "models.config"
        staged = config_file.with_suffix(".tmp")
        staged.write_text(model_config_list(model_config("a", a), model_config("c", c)))
        staged.rename(config_file)
        server.wait_for_state("c", 1, "AVAILABLE")
        assert server.status("a")[1][0] == "AVAILABLE"
