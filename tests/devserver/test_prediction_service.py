"""PredictionService against a real server: Predict resolution (B16), metadata/Classify/Regress (B18),
warmup (B22), and the TF1 SavedModel form.

Runs against the devserver, or the stock binary with TFS_BINARY set.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    regression_pb2,
)

from testkit.savedmodels import build_example_model, build_gated_model, build_half_plus_two, write_warmup
from testkit.servers import ServerHandle, model_config, model_config_list, predict_request
from tests.devserver.helpers import Background, Gate, assert_rpc_error, float_examples, gated_request
from tfs_devserver.tensors import from_numpy

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def served(shared_server: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> ServerHandle:
    """The shared server serving r (versions 1, 2; a=1, a=2), t1 (TF1 form), ex (Classify/Regress)."""
    root = tmp_path_factory.mktemp("prediction-models")
    build_half_plus_two(root / "r", 1, a=1.0)
    build_half_plus_two(root / "r", 2, a=2.0)
    build_half_plus_two(root / "t1", 1, a=3.0, tf1=True)
    build_example_model(root / "ex", 1, a=1.0, b=1.0)
    shared_server.reload(
        model_config_list(
            model_config("r", root / "r", all_versions=True),
            model_config("t1", root / "t1"),
            model_config("ex", root / "ex"),
        )
    )
    shared_server.wait_for_state("r", 1, "AVAILABLE")
    shared_server.wait_for_state("r", 2, "AVAILABLE")
    return shared_server


def test_predict_resolves_model_spec(served: ServerHandle) -> None:
    """B16: no version = highest AVAILABLE, a version = exactly that; the response names what served."""
    stub = served.prediction_stub()
    response = stub.Predict(predict_request("r", [1.0, 2.0]), timeout=30)
    assert list(response.outputs["y"].float_val) == [4.0, 6.0]
    assert (response.model_spec.name, response.model_spec.version.value) == ("r", 2)
    assert response.model_spec.signature_name == "serving_default"
    assert served.predict("r", [1.0], version=1) == ([3.0], 1)


def test_predict_resolution_errors(served: ServerHandle) -> None:
    """B16: the stock codes and messages for a missing name, version, model or label."""
    stub = served.prediction_stub()
    assert_rpc_error(
        lambda: stub.Predict(predict_request("", [1.0]), timeout=30),
        INVALID,
        "ModelSpec has no name specified.",
    )
    assert_rpc_error(
        lambda: stub.Predict(predict_request("r", [1.0], version=7), timeout=30),
        NOT_FOUND,
        "Servable not found for request: Specific(r, 7)",
    )
    assert_rpc_error(
        lambda: stub.Predict(predict_request("nope", [1.0]), timeout=30),
        NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )
    assert_rpc_error(
        lambda: stub.Predict(predict_request("r", [1.0], label="gold"), timeout=30),
        INVALID,
        "Unrecognized servable version label: gold",
    )


def test_predict_rejects_bad_inputs(served: ServerHandle) -> None:
    """B16/bad input: wrong dtype, alias, signature or output filter fail; the model still serves."""
    stub = served.prediction_stub()
    wrong_dtype = predict_request("r", [1.0])
    wrong_dtype.inputs["x"].CopyFrom(from_numpy(np.array([1, 2], dtype=np.int32)))
    assert "int32" in assert_rpc_error(lambda: stub.Predict(wrong_dtype, timeout=30), INVALID)
    extra = predict_request("r", [1.0])
    extra.inputs["z"].CopyFrom(from_numpy(np.array([1.0], dtype=np.float32)))
    assert "z" in assert_rpc_error(lambda: stub.Predict(extra, timeout=30), INVALID)
    missing = predict_request("r", [1.0])
    del missing.inputs["x"]
    assert_rpc_error(lambda: stub.Predict(missing, timeout=30), INVALID)
    unknown_signature = predict_request("r", [1.0], signature_name="nope")
    assert "nope" in assert_rpc_error(
        lambda: stub.Predict(unknown_signature, timeout=30), grpc.StatusCode.FAILED_PRECONDITION
    )
    bad_filter = predict_request("r", [1.0])
    bad_filter.output_filter.append("w")
    assert "w" in assert_rpc_error(lambda: stub.Predict(bad_filter, timeout=30), INVALID)
    assert served.predict("r", [1.0]) == ([4.0], 2)


@pytest.mark.devserver_only
def test_predict_error_messages(served: ServerHandle) -> None:
    """B16/bad input: the devserver's messages for malformed requests (stock wording where it has one)."""
    stub = served.prediction_stub()
    wrong_dtype = predict_request("r", [1.0])
    wrong_dtype.inputs["x"].CopyFrom(from_numpy(np.array([1], dtype=np.int32)))
    assert_rpc_error(
        lambda: stub.Predict(wrong_dtype, timeout=30),
        INVALID,
        "Expects arg[0] to be float but int32 is provided",
    )
    extra = predict_request("r", [1.0])
    extra.inputs["z"].CopyFrom(from_numpy(np.array([1.0], dtype=np.float32)))
    assert_rpc_error(
        lambda: stub.Predict(extra, timeout=30),
        INVALID,
        "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. "
        "Missing but required: {}.",
    )
    assert_rpc_error(
        lambda: stub.Predict(predict_request("r", [1.0], signature_name="nope"), timeout=30),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    )


def test_shape_is_the_graphs_business_not_the_signatures(served: ServerHandle) -> None:
    """B23: a [2,2] input to a [-1] signature is fed as is; the graph's broadcasting ops answer it."""
    request = predict_request("r", [1.0])
    request.inputs["x"].CopyFrom(from_numpy(np.ones((2, 2), dtype=np.float32)))
    response = served.prediction_stub().Predict(request, timeout=30)
    assert [d.size for d in response.outputs["y"].tensor_shape.dim] == [2, 2]
    assert list(response.outputs["y"].float_val) == [4.0] * 4


def test_tensor_content_and_typed_fields_are_both_accepted(served: ServerHandle) -> None:
    """B16: inputs may use tensor_content or float_val; outputs come back in float_val."""
    request = predict_request("r", [0.0])
    request.inputs["x"].CopyFrom(from_numpy(np.array([1.0, 3.0], dtype=np.float32), use_tensor_content=True))
    response = served.prediction_stub().Predict(request, timeout=30)
    assert list(response.outputs["y"].float_val) == [4.0, 8.0]


def test_tf1_savedmodel_serves(served: ServerHandle) -> None:
    """TF1 (signature-def) SavedModels load and serve like TF2 ones."""
    assert served.predict("t1", [1.0, 2.0]) == ([5.0, 8.0], 1)


def test_get_model_metadata(served: ServerHandle) -> None:
    """B18: GetModelMetadata returns the SavedModel's signature_def map, and checks its arguments."""
    stub = served.prediction_stub()
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "r"
    response = stub.GetModelMetadata(request, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value) == ("r", 2)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    serving = signatures.signature_def["serving_default"]
    assert list(serving.inputs) == ["x"]
    assert serving.inputs["x"].dtype == 1
    assert [d.size for d in serving.inputs["x"].tensor_shape.dim] == [-1]
    assert list(serving.outputs) == ["y"]
    request.metadata_field[:] = ["nope"]
    assert_rpc_error(lambda: stub.GetModelMetadata(request, timeout=30), INVALID)
    assert_rpc_error(
        lambda: stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(), timeout=30), INVALID
    )


def test_classify_and_regress(served: ServerHandle) -> None:
    """B18: Classify and Regress run on signatures that support them, and fail cleanly on others."""
    stub = served.prediction_stub()
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "ex"
    regress.model_spec.signature_name = "regress"
    regress.input.example_list.examples.extend(float_examples(1.0, 3.0))
    response = stub.Regress(regress, timeout=30)
    assert [r.value for r in response.result.regressions] == [2.0, 4.0]
    assert response.model_spec.version.value == 1
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "ex"
    classify.model_spec.signature_name = "classify"
    classify.input.example_list.examples.extend(float_examples(1.0))
    result = stub.Classify(classify, timeout=30).result
    assert [(c.label, c.score) for c in result.classifications[0].classes] == [("lo", 2.0), ("hi", 4.0)]
    classify.model_spec.name = "r"
    classify.model_spec.signature_name = ""
    assert_rpc_error(lambda: stub.Classify(classify, timeout=30), INVALID)


def test_warmup_runs_before_available_and_failing_warmup_fails_load(
    shared_server: ServerHandle, tmp_path: Path
) -> None:
    """B22: warmup replays while LOADING; AVAILABLE only afterwards; a failing record fails the load."""
    base = tmp_path / "w"
    staged = build_gated_model(tmp_path / "staging", 1)
    gate = Gate(tmp_path / "gate")
    write_warmup(staged, [gated_request("w", ""), gated_request("w", gate)])
    base.mkdir()
    staged.rename(base / "1")
    bad = build_gated_model(tmp_path / "bad", 1)
    bad_request = gated_request("wbad", "")
    bad_request.inputs["nope"].CopyFrom(from_numpy(np.array([1.0], dtype=np.float32)))
    write_warmup(bad, [bad_request])
    config = model_config_list(model_config("w", base), model_config("wbad", tmp_path / "bad"))
    pending = Background(lambda: shared_server.reload(config))
    gate.wait_started()
    assert shared_server.status("w")[1][0] == "LOADING"
    gate.open()
    with pytest.raises(grpc.RpcError) as failure:
        pending.result()
    assert failure.value.code() == grpc.StatusCode.UNKNOWN
    assert "wbad" in failure.value.details()
    assert "INVALID_ARGUMENT" in failure.value.details()
    assert shared_server.status("w")[1][0] == "AVAILABLE"
    state, code, _ = shared_server.status("wbad")[1]
    assert (state, code) == ("END", grpc.StatusCode.INVALID_ARGUMENT.value[0])


def test_too_many_warmup_records_fail_the_load(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B22: more than 1000 warmup records fail the load."""
    version = build_half_plus_two(tmp_path / "many", 1)
    write_warmup(version, [predict_request("many", [1.0])] * 1001)
    with pytest.raises(grpc.RpcError) as failure:
        shared_server.reload(model_config_list(model_config("many", tmp_path / "many")))
    assert failure.value.code() == grpc.StatusCode.UNKNOWN
    assert shared_server.status("many")[1][0] == "END"


def test_status_request_without_name_is_not_found(shared_server: ServerHandle) -> None:
    """B15: an empty model name is just a model never seen."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = ""
    assert_rpc_error(lambda: shared_server.model_stub().GetModelStatus(request, timeout=10), NOT_FOUND)
