"""The kinds of SavedModel people serve, loaded and run the way TF Serving's SavedModelBundle does (B23, B24).

A TF1 Estimator-style export parsing tf.Example, a TF1 model whose table comes from an asset file through the
main op, a TF2 ``tf.Module`` and a Keras export: each loads, answers Predict over gRPC and REST (row and
columnar, and inputs whose shapes differ from the declared ones where the graph allows), Classify/Regress
where its signatures support them, and GetModelMetadata. Runs against the devserver, or the stock binary
with TFS_BINARY set.

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
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

from testkit.servers import ServerHandle, model_config, model_config_list
from tests.devserver.helpers import assert_rpc_error, float_examples
from tests.devserver.tf1_models import (
    build_asset_table,
    build_estimator_style,
    build_keras,
    build_tf2_module,
)
from tfs_devserver.tensors import from_numpy, to_numpy

INVALID = grpc.StatusCode.INVALID_ARGUMENT
MODELS = {
    "est": build_estimator_style,
    "table": build_asset_table,
    "mod": build_tf2_module,
    "ker": build_keras,
}


@pytest.fixture(scope="module")
def kinds(shared_server: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> ServerHandle:
    """The shared server serving one version of each model kind (a=0.5, b=2: half_plus_two)."""
    root = tmp_path_factory.mktemp("model-kinds")
    for name, build in MODELS.items():
        build(root / name, 1)
    shared_server.reload(model_config_list(*(model_config(name, root / name) for name in MODELS)))
    for name in MODELS:
        shared_server.wait_for_state(name, 1, "AVAILABLE")
    return shared_server


def _predict(server: ServerHandle, name: str, inputs: dict[str, np.ndarray], signature: str = "") -> dict:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(from_numpy(value))
    response = server.prediction_stub().Predict(request, timeout=30)
    return {alias: to_numpy(tensor) for alias, tensor in response.outputs.items()}


@pytest.mark.parametrize("name", ["est", "mod"])
def test_predict_feeds_any_shape_the_graph_accepts(kinds: ServerHandle, name: str) -> None:
    """B23: x of shape [1] sent to a [-1,1] signature is answered (3.0 at 2.0), as is the declared [2,1]."""
    assert _predict(kinds, name, {"x": np.array([2.0], np.float32)})["y"].tolist() == [3.0]
    batch = _predict(kinds, name, {"x": np.array([[2.0], [4.0]], np.float32)})["y"]
    assert batch.tolist() == [[3.0], [4.0]]


@pytest.mark.parametrize("name", ["est", "mod"])
def test_rest_predict_row_and_columnar_any_shape(kinds: ServerHandle, name: str) -> None:
    """B19/B23: REST row and columnar Predict, both with the declared [N,1] and the undeclared [N] shape."""
    path = f"/v1/models/{name}:predict"
    assert kinds.http("POST", path, {"instances": [[2.0], [4.0]]}) == (200, {"predictions": [[3.0], [4.0]]})
    assert kinds.http("POST", path, {"instances": [2.0]}) == (200, {"predictions": [3.0]})
    assert kinds.http("POST", path, {"inputs": {"x": [[2.0]]}}) == (200, {"outputs": [[3.0]]})
    assert kinds.http("POST", path, {"inputs": [2.0, 6.0]}) == (200, {"outputs": [3.0, 5.0]})


def test_estimator_style_feeds_past_the_parser(kinds: ServerHandle) -> None:
    """B23: the predict signature's input is ParseExample's output tensor, fed by name past the parser."""
    assert _predict(kinds, "est", {"x": np.array([[0.0], [10.0]], np.float32)})["y"].tolist() == [
        [2.0],
        [7.0],
    ]


def test_estimator_style_regress_and_classify_grpc(kinds: ServerHandle) -> None:
    """B24: Regress reads ``outputs`` and Classify ``classes``/``scores`` over serialized tf.Examples."""
    stub = kinds.prediction_stub()
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "est"
    regress.model_spec.signature_name = "regress_x_to_y"
    regress.input.example_list.examples.extend(float_examples(2.0, 4.0))
    response = stub.Regress(regress, timeout=30)
    assert [r.value for r in response.result.regressions] == [3.0, 4.0]
    assert (response.model_spec.name, response.model_spec.version.value) == ("est", 1)
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "est"
    classify.model_spec.signature_name = "classify_x_to_y"
    context = classify.input.example_list_with_context
    context.context.features.feature["x2"].float_list.value.append(9.0)
    context.examples.extend(float_examples(2.0))
    result = stub.Classify(classify, timeout=30).result
    assert [(c.label, c.score) for c in result.classifications[0].classes] == [("lo", 3.0), ("hi", 6.0)]


def test_estimator_style_multi_inference(kinds: ServerHandle) -> None:
    """B24: MultiInference runs a classify and a regress task over one shared input."""
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify_x_to_y", "classify"), ("regress_x_to_y", "regress")):
        task = request.tasks.add(method_name=f"tensorflow/serving/{method}")
        task.model_spec.name = "est"
        task.model_spec.signature_name = signature
    request.input.example_list.examples.extend(float_examples(4.0))
    results = kinds.prediction_stub().MultiInference(request, timeout=30).results
    assert [c.score for c in results[0].classification_result.classifications[0].classes] == [4.0, 8.0]
    assert [r.value for r in results[1].regression_result.regressions] == [4.0]
    assert [(r.model_spec.signature_name, r.model_spec.version.value) for r in results] == [
        ("classify_x_to_y", 1),
        ("regress_x_to_y", 1),
    ]


def test_estimator_style_rest_classify_and_regress(kinds: ServerHandle) -> None:
    """B24: REST :classify and :regress take {"examples": [...], "context": {...}}."""
    regress = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}, {"x": 6.0}]}
    assert kinds.http("POST", "/v1/models/est:regress", regress) == (200, {"result": [3.0, 5.0]})
    classify = {"signature_name": "classify_x_to_y", "context": {"x2": 1.0}, "examples": [{"x": 2.0}]}
    assert kinds.http("POST", "/v1/models/est:classify", classify) == (
        200,
        {"result": [[["lo", 3.0], ["hi", 6.0]]]},
    )


def test_classify_and_regress_need_their_signature_tensors(kinds: ServerHandle) -> None:
    """B24: a signature lacking ``inputs`` or the wanted outputs is INVALID_ARGUMENT; serving goes on."""
    stub = kinds.prediction_stub()
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "mod"
    classify.input.example_list.examples.extend(float_examples(1.0))
    assert_rpc_error(lambda: stub.Classify(classify, timeout=30), INVALID)
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "est"
    regress.model_spec.signature_name = "classify_x_to_y"
    regress.input.example_list.examples.extend(float_examples(1.0))
    assert_rpc_error(lambda: stub.Regress(regress, timeout=30), INVALID)
    assert _predict(kinds, "mod", {"x": np.array([2.0], np.float32)})["y"].tolist() == [3.0]


def test_asset_table_comes_from_the_savedmodel_assets(kinds: ServerHandle) -> None:
    """B23: the main op fills the table from <version>/assets/vocab.txt (the build's copy is gone)."""
    words = np.array([b"banana", b"kiwi", b"apple"], dtype=object)
    assert _predict(kinds, "table", {"words": words})["ids"].tolist() == [1, -1, 0]
    body = {"instances": ["cherry", "apple"]}
    assert kinds.http("POST", "/v1/models/table:predict", body) == (200, {"predictions": [2, 0]})


def test_keras_export_serves_and_the_graph_refuses_what_it_cannot_run(kinds: ServerHandle) -> None:
    """B23: Keras answers [N,1]; a [1] input reaches MatMul, whose own INVALID_ARGUMENT comes back."""
    assert _predict(kinds, "ker", {"x": np.array([[2.0], [4.0]], np.float32)})["output_0"].tolist() == [
        [3.0],
        [4.0],
    ]
    assert kinds.http("POST", "/v1/models/ker:predict", {"instances": [[2.0]]}) == (
        200,
        {"predictions": [[3.0]]},
    )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ker"
    request.inputs["x"].CopyFrom(from_numpy(np.array([2.0], np.float32)))
    details = assert_rpc_error(lambda: kinds.prediction_stub().Predict(request, timeout=30), INVALID)
    # The kernel's own words vary with the TensorFlow release ("In[0] is not a matrix" up to 2.20, "In[0] and
    # In[1] has different ndims" in 2.21); the node that refused is what stays.
    assert "MatMul" in details
    code, body = kinds.http("POST", "/v1/models/ker:predict", {"instances": [2.0]})
    assert code == 400
    assert "MatMul" in body["error"]


@pytest.mark.parametrize(
    ("name", "signature", "inputs", "outputs"),
    [
        ("est", "regress_x_to_y", ["inputs"], ["outputs"]),
        ("est", "serving_default", ["x"], ["y"]),
        ("table", "serving_default", ["words"], ["ids"]),
        ("mod", "serving_default", ["x"], ["y"]),
        ("ker", "serving_default", ["x"], ["output_0"]),
    ],
)
def test_metadata_is_the_metagraphs_signature_defs(
    kinds: ServerHandle, name: str, signature: str, inputs: list[str], outputs: list[str]
) -> None:
    """B18: GetModelMetadata (gRPC and REST) returns the MetaGraphDef's signature_def map."""
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = name
    response = kinds.prediction_stub().GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert sorted(signatures.signature_def[signature].inputs) == inputs
    assert sorted(signatures.signature_def[signature].outputs) == outputs
    code, body = kinds.http("GET", f"/v1/models/{name}/metadata")
    assert code == 200
    rest_signature = body["metadata"]["signature_def"]["signature_def"][signature]
    assert sorted(rest_signature["inputs"]) == inputs


def test_asset_model_can_only_read_its_own_assets_copy(tmp_path: Path) -> None:
    """The path baked into the asset model's graph is gone, so serving it proves the loader rebinds assets."""
    from tensorflow.core.protobuf import saved_model_pb2

    version = build_asset_table(tmp_path / "t", 1)
    saved = saved_model_pb2.SavedModel.FromString((version / "saved_model.pb").read_bytes())
    node = next(n for n in saved.meta_graphs[0].graph_def.node if n.name == "vocab_path")
    baked = Path(node.attr["value"].tensor.string_val[0].decode())
    assert baked.name == "vocab.txt"
    assert not baked.exists()
    assert (version / "assets" / "vocab.txt").read_text().split() == ["apple", "banana", "cherry"]
