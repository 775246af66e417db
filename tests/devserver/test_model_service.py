"""ModelService against a real server process: ReloadConfig (B9–B13) and GetModelStatus (B14, B15).

Runs against the devserver, or the stock binary with TFS_BINARY set. Every test sends the whole config it
needs to the shared server and uses model names of its own.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2

from testkit.poll import poll_until
from testkit.savedmodels import build_gated_model, build_half_plus_two, corrupt_savedmodel, write_warmup
from testkit.servers import ServerHandle, model_config, model_config_list
from tests.devserver.helpers import Background, Gate, assert_rpc_error, gated_request

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def test_reload_accepts_only_model_config_list(shared_server: ServerHandle) -> None:
    """B9: a config other than model_config_list is INVALID_ARGUMENT with the stock message."""
    request = model_management_pb2.ReloadConfigRequest()
    request.config.custom_model_config.type_url = "type.googleapis.com/google.protobuf.Empty"
    message = (
        "ServerModelConfig type not supported by HandleReloadConfigRequest. "
        "Only ModelConfigList is currently supported"
    )
    stub = shared_server.model_stub()
    assert_rpc_error(lambda: stub.HandleReloadConfigRequest(request, timeout=30), INVALID, message)
    empty = model_management_pb2.ReloadConfigRequest()
    assert_rpc_error(lambda: stub.HandleReloadConfigRequest(empty, timeout=30), INVALID, message)


def test_empty_list_unloads_every_model(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B9/B11: an empty model_config_list is valid; every model is unloaded (asynchronously)."""
    build_half_plus_two(tmp_path / "e1", 1)
    build_half_plus_two(tmp_path / "e2", 1)
    shared_server.reload(
        model_config_list(model_config("e1", tmp_path / "e1"), model_config("e2", tmp_path / "e2"))
    )
    response = shared_server.reload(model_config_list())
    assert response.status.error_code == 0
    shared_server.wait_for_state("e1", 1, "END")
    shared_server.wait_for_state("e2", 1, "END")


def test_reload_checks_in_stock_order(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B10: duplicate name, then relative path, then platform change, then labels, then platform."""
    base = tmp_path / "p"
    build_half_plus_two(base, 1)
    shared_server.reload(model_config_list(model_config("p", base)))
    reload = shared_server.reload
    dup = model_config("p", base) + model_config("p", "relative/p")
    assert_rpc_error(
        lambda: reload(model_config_list(dup)),
        INVALID,
        "Illegal to list model p multiple times in config list",
    )
    relative_and_label = model_config("p", base) + model_config("q", "relative/q", labels={"x": 9})
    assert_rpc_error(
        lambda: reload(model_config_list(relative_and_label)),
        INVALID,
        "Expected model q to have an absolute path or URI; got base_path()=relative/q",
    )
    label_and_platform = model_config("p", base) + model_config("q", base, labels={"x": 9}, platform="other")
    assert_rpc_error(
        lambda: reload(model_config_list(label_and_platform)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "Request to assign label to version 9 of model q, which is not currently available for inference",
    )
    assert_rpc_error(
        lambda: reload(model_config_list(model_config("p", base), model_config("q", base, platform="other"))),
        INVALID,
        "Model q requests unsupported platform other",
    )
    assert_rpc_error(
        lambda: reload(model_config_list(model_config("p", base), model_config("q", base, platform=""))),
        INVALID,
    )
    assert shared_server.status("q") == {}
    assert shared_server.predict("p", [2.0]) == ([3.0], 1)


def test_platform_change_is_refused_and_the_rejected_config_remembered(
    shared_server: ServerHandle, tmp_path: Path
) -> None:
    """B10: changing a live model's platform is refused; the server remembers the rejected config (quirk)."""
    base = tmp_path / "pc"
    build_half_plus_two(base, 1)
    shared_server.reload(model_config_list(model_config("pc", base)))
    assert_rpc_error(
        lambda: shared_server.reload(model_config_list(model_config("pc", base, platform="other"))),
        INVALID,
        "Illegal to change a model's platform. For model pc platform was tensorflow and new platform "
        "requested is other",
    )
    assert shared_server.predict("pc", [2.0]) == ([3.0], 1)
    assert_rpc_error(
        lambda: shared_server.reload(model_config_list(model_config("pc", base))),
        INVALID,
        "Illegal to change a model's platform. For model pc platform was other and new platform requested "
        "is tensorflow",
    )
    shared_server.reload(model_config_list())
    # Re-adding before the unload finished would see that END and fail, in the stock server too.
    shared_server.wait_for_state("pc", 1, "END")
    shared_server.reload(model_config_list(model_config("pc", base)))


def test_removed_models_unload_without_waiting_and_drain(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B11/B17: ReloadConfig returns while a removed version drains; its in-flight request completes."""
    base = tmp_path / "g"
    build_gated_model(base, 1)
    shared_server.reload(model_config_list(model_config("g", base)))
    gate = Gate(tmp_path / "gate")
    stub = shared_server.prediction_stub()
    in_flight = Background(lambda: stub.Predict(gated_request("g", gate, x=1.0), timeout=60))
    gate.wait_started()
    shared_server.reload(model_config_list(), timeout=10)
    shared_server.wait_for_state("g", 1, "UNLOADING")
    assert_rpc_error(
        lambda: stub.Predict(gated_request("g", ""), timeout=10),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(g)",
    )
    assert in_flight.running()
    assert shared_server.status("g")[1][0] == "UNLOADING"
    gate.open()
    response = in_flight.result()
    assert (list(response.outputs["y"].float_val), response.model_spec.version.value) == ([3.0], 1)
    shared_server.wait_for_state("g", 1, "END")


def test_reload_waits_for_new_models(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B12: ReloadConfig returns once a new model is AVAILABLE; it serves at once."""
    build_half_plus_two(tmp_path / "n", 1)
    shared_server.reload(model_config_list(model_config("n", tmp_path / "n")))
    assert shared_server.status("n") == {1: ("AVAILABLE", 0, "")}
    assert shared_server.predict("n", [4.0]) == ([4.0], 1)


def test_changes_to_existing_models_return_at_once(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B12/B14/B5: a policy change returns OK at once; the new version shows LOADING while the old serves."""
    base = tmp_path / "x"
    build_gated_model(base, 1)
    v2 = build_gated_model(base, 2, b=10.0)
    gate = Gate(tmp_path / "warmup-gate")
    write_warmup(v2, [gated_request("x", gate)])
    shared_server.reload(model_config_list(model_config("x", base, versions=[1])))
    shared_server.reload(model_config_list(model_config("x", base, versions=[1, 2])), timeout=10)
    gate.wait_started()
    shared_server.wait_for_state("x", 2, "LOADING")
    assert shared_server.status("x")[1][0] == "AVAILABLE"
    assert shared_server.predict("x", [1.0], extra_inputs={"gate": b""}) == ([3.0], 1)
    gate.open()
    shared_server.wait_for_state("x", 2, "AVAILABLE")
    assert shared_server.predict("x", [1.0], extra_inputs={"gate": b""}) == ([11.0], 2)


def test_new_model_that_fails_returns_unknown_then_ok(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B12/B14: a new model whose only version fails gives UNKNOWN (stock text); resending returns OK.

    The stock source wraps ServableId::DebugString ("{name: m version: 1}") in another pair of braces, so the
    message opens with three; docs/tfserving-behaviour.md's quote shows two.
    """
    base = tmp_path / "bad"
    corrupt_savedmodel(build_half_plus_two(base, 1))
    pb = base / "1" / "saved_model.pb"
    error = f"Can't parse {pb} as binary proto"
    config = model_config_list(model_config("bad", base))
    assert_rpc_error(
        lambda: shared_server.reload(config),
        grpc.StatusCode.UNKNOWN,
        "1 model(s) did not become available: {{{name: bad version: 1} due to error: DATA_LOSS: "
        + error
        + "}, }",
    )
    assert shared_server.status("bad") == {1: ("END", grpc.StatusCode.DATA_LOSS.value[0], error)}
    assert shared_server.reload(config).status.error_code == 0


def test_missing_base_path_blocks_reload_and_serializes_later_ones(
    shared_server: ServerHandle, tmp_path: Path
) -> None:
    """B12: a new model without a base path (or integer child) blocks ReloadConfig and later reloads."""
    missing, other = tmp_path / "late", tmp_path / "other"
    build_half_plus_two(other, 1)
    deadline = grpc.StatusCode.DEADLINE_EXCEEDED
    assert_rpc_error(
        lambda: shared_server.reload(model_config_list(model_config("late", missing)), 1.5), deadline
    )
    assert_rpc_error(
        lambda: shared_server.reload(model_config_list(model_config("other", other)), 1.5), deadline
    )
    (missing / "v1").mkdir(parents=True)  # exists now, but no integer child: still blocked
    assert shared_server.status("other") == {}
    build_half_plus_two(missing, 1)
    shared_server.wait_for_state("other", 1, "AVAILABLE")
    assert shared_server.status("late")[1][0] in {"AVAILABLE", "UNLOADING", "END"}


def test_labels_must_point_to_available_versions(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B13/B16: labels only to AVAILABLE versions; Predict by label; the label map is replaced whole."""
    base = tmp_path / "l"
    build_half_plus_two(base, 1, a=1.0)
    build_half_plus_two(base, 2, a=2.0)
    reload = shared_server.reload
    reload(model_config_list(model_config("l", base, versions=[1])))
    reload(model_config_list(model_config("l", base, versions=[1], labels={"stable": 1})))
    assert shared_server.predict("l", [1.0], label="stable") == ([3.0], 1)
    assert_rpc_error(
        lambda: reload(
            model_config_list(model_config("l", base, versions=[1, 2], labels={"stable": 1, "canary": 2}))
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "Request to assign label to version 2 of model l, which is not currently available for inference",
    )
    # The label-safe swap: serve both with labels unchanged, wait, then move the label and drop the old one.
    reload(model_config_list(model_config("l", base, versions=[1, 2], labels={"stable": 1})))
    shared_server.wait_for_state("l", 2, "AVAILABLE")
    reload(model_config_list(model_config("l", base, versions=[2], labels={"stable": 2})))
    assert shared_server.predict("l", [1.0], label="stable") == ([4.0], 2)
    reload(model_config_list(model_config("l", base, versions=[2])))
    assert_rpc_error(
        lambda: shared_server.predict("l", [1.0], label="stable"),
        INVALID,
        "Unrecognized servable version label: stable",
    )


def test_status_errors(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B15: Missing ModelSpec, unknown version, never-seen model: the stock codes and messages."""
    build_half_plus_two(tmp_path / "s", 1)
    shared_server.reload(model_config_list(model_config("s", tmp_path / "s")))
    stub = shared_server.model_stub()
    assert_rpc_error(
        lambda: stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(), timeout=10),
        INVALID,
        "Missing ModelSpec",
    )
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "s"
    request.model_spec.version.value = 9
    assert_rpc_error(
        lambda: stub.GetModelStatus(request, timeout=10),
        grpc.StatusCode.NOT_FOUND,
        "Could not find version 9 of model s",
    )
    request.model_spec.name = "never-seen"
    request.model_spec.ClearField("version")
    assert_rpc_error(
        lambda: stub.GetModelStatus(request, timeout=10),
        grpc.StatusCode.NOT_FOUND,
        "Could not find any versions of model never-seen",
    )


def test_status_descending_label_ignored_end_kept(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B15: versions listed in descending order; version_label ignored; END entries kept after removal."""
    base = tmp_path / "d"
    for version in (1, 2, 3):
        build_half_plus_two(base, version)
    shared_server.reload(model_config_list(model_config("d", base, all_versions=True)))
    poll_until(
        lambda: (
            all(s[0] == "AVAILABLE" for s in shared_server.status("d").values())
            and len(shared_server.status("d")) == 3
        ),
        what="d 1..3 AVAILABLE",
    )
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "d"
    request.model_spec.version_label = "whatever"
    response = shared_server.model_stub().GetModelStatus(request, timeout=10)
    assert [s.version for s in response.model_version_status] == [3, 2, 1]
    shared_server.reload(model_config_list())
    poll_until(lambda: [s[0] for s in shared_server.status("d").values()] == ["END"] * 3, what="d all END")
    assert list(shared_server.status("d")) == [3, 2, 1]
