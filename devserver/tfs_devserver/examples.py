"""Classify, Regress and MultiInference over ``tf.Example`` inputs, as TF Serving runs them (B24).

Why a module of its own: these three share TF Serving's path (classifier.cc, regressor.cc, multi_inference.cc,
util.cc): the request's ``Input`` is serialized into one string tensor of shape [N], fed to the signature's
single input ``inputs`` by tensor name, and the outputs ``classes``/``scores`` or ``outputs`` are fetched and
checked for shape and dtype. Any signature holding those names qualifies (TF Serving checks a signature's
``method_name`` only behind ``--enable_signature_method_name_check``, off by default).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    regression_pb2,
)

from tfs_devserver.servable import DEFAULT_SIGNATURE, Servable, Signature
from tfs_devserver.status import Code, ServingError, invalid_argument

Array = np.ndarray[Any, Any]
INPUTS, CLASSES, SCORES, OUTPUTS = "inputs", "classes", "scores", "outputs"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def serialized_examples(request_input: input_pb2.Input) -> Array:
    """InputToSerializedExampleTensor: one serialized tf.Example per row, the context merged into each."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        rows = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        context = request_input.example_list_with_context.context.SerializeToString()
        rows = [context + e.SerializeToString() for e in request_input.example_list_with_context.examples]
    else:
        rows = []
    if not rows:
        raise invalid_argument("Input is empty.")
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def _debug(signature: Signature) -> str:
    text: str = text_format.MessageToString(signature.proto)
    return text


def classification_tensors(signature: Signature) -> tuple[str, list[str]]:
    """PreProcessClassification: (input tensor name, output tensor names) or INVALID_ARGUMENT."""
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if INPUTS not in signature.inputs:
        raise invalid_argument(f"No classification inputs found in SignatureDef: {_debug(signature)}")
    names = [signature.outputs[k].name for k in (CLASSES, SCORES) if k in signature.outputs]
    if not names:
        raise invalid_argument(
            f'Expected classification signature outputs to contain at least one of "{CLASSES}" or '
            f'"{SCORES}". Signature was: {_debug(signature)}'
        )
    return signature.inputs[INPUTS].name, names


def regression_tensors(signature: Signature) -> tuple[str, list[str]]:
    """PreProcessRegression: (input tensor name, [output tensor name]) or INVALID_ARGUMENT."""
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if INPUTS not in signature.inputs:
        raise invalid_argument(f"No regression inputs found in SignatureDef: {_debug(signature)}")
    if OUTPUTS not in signature.outputs:
        raise invalid_argument(f"No regression outputs found in SignatureDef: {_debug(signature)}")
    return signature.inputs[INPUTS].name, [signature.outputs[OUTPUTS].name]


def _class_matrix(value: Array | None, what: str, dtype: int, rows: int) -> Array | None:
    if value is None:
        return None
    if value.ndim != 2:
        raise invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {list(value.shape)}")
    is_string = value.dtype == np.dtype(object)
    if is_string != (dtype == types_pb2.DT_STRING) or (not is_string and value.dtype != np.float32):
        raise invalid_argument(
            f"Expected {what} Tensor of {types_pb2.DataType.Name(dtype)}. Got: {value.dtype.name}"
        )
    if value.shape[0] != rows:
        raise invalid_argument(f"Expected {what} output batch size of {rows}. Got: {value.shape[0]}")
    return value


def classification_result(
    signature: Signature, rows: int, fetched: dict[str, Array]
) -> classification_pb2.ClassificationResult:
    """PostProcessClassificationResult: [N, C] classes (string) and/or scores (float) into a result."""
    classes = _class_matrix(
        fetched.get(signature.outputs[CLASSES].name) if CLASSES in signature.outputs else None,
        CLASSES,
        types_pb2.DT_STRING,
        rows,
    )
    scores = _class_matrix(
        fetched.get(signature.outputs[SCORES].name) if SCORES in signature.outputs else None,
        SCORES,
        types_pb2.DT_FLOAT,
        rows,
    )
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. "
            f"{scores.shape[1]}"
        )
    width = (classes if classes is not None else scores).shape[1]  # type: ignore[union-attr]
    result = classification_pb2.ClassificationResult()
    for row in range(rows):
        entry = result.classifications.add()
        for col in range(width):
            item = entry.classes.add()
            if classes is not None:
                item.label = bytes(classes[row][col]).decode("utf-8", "replace")
            if scores is not None:
                item.score = float(scores[row][col])
    return result


def regression_result(
    signature: Signature, rows: int, fetched: dict[str, Array]
) -> regression_pb2.RegressionResult:
    """PostProcessRegressionResult: [N] or [N, 1] float ``outputs`` into a result."""
    value = fetched[signature.outputs[OUTPUTS].name]
    if not (value.ndim == 1 or (value.ndim == 2 and value.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            f"{list(value.shape)}"
        )
    if value.dtype != np.float32:
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {value.dtype.name}")
    if value.shape[0] != rows:
        raise invalid_argument(
            f"Input batch size did not match output batch size: {rows} vs. {value.shape[0]}"
        )
    result = regression_pb2.RegressionResult()
    for item in value.reshape(rows):
        result.regressions.add(value=float(item))
    return result


def _run(
    servable: Servable, request_input: input_pb2.Input, feed: str, fetches: list[str]
) -> dict[str, Array]:
    """PerformOneShotTensorComputation: the serialized examples in, the named tensors out."""
    examples = serialized_examples(request_input)
    unique = list(dict.fromkeys(fetches))
    return dict(zip(unique, servable.run({feed: examples}, unique), strict=True))


def _signature(servable: Servable, name: str) -> Signature:
    key = name or DEFAULT_SIGNATURE
    if not servable.has_signature(key):
        raise invalid_argument(f"No signature was found with the name: {key}")
    return servable.signature(key)


def classify(
    servable: Servable, signature_name: str, request_input: input_pb2.Input
) -> classification_pb2.ClassificationResult:
    """Classify: serialized Examples into ``inputs``, ``classes`` and/or ``scores`` out."""
    signature = _signature(servable, signature_name)
    feed, fetches = classification_tensors(signature)
    fetched = _run(servable, request_input, feed, fetches)
    return classification_result(signature, _rows(request_input), fetched)


def regress(
    servable: Servable, signature_name: str, request_input: input_pb2.Input
) -> regression_pb2.RegressionResult:
    """Regress: serialized Examples into ``inputs``, ``outputs`` of shape [N] or [N, 1] out."""
    signature = _signature(servable, signature_name)
    feed, fetches = regression_tensors(signature)
    fetched = _run(servable, request_input, feed, fetches)
    return regression_result(signature, _rows(request_input), fetched)


def _rows(request_input: input_pb2.Input) -> int:
    kind = request_input.WhichOneof("kind")
    if kind == "example_list_with_context":
        return len(request_input.example_list_with_context.examples)
    return len(request_input.example_list.examples)


def _task_tensors(servable: Servable, tasks: list[inference_pb2.InferenceTask]) -> tuple[str, list[str]]:
    """TensorFlowMultiInferenceRunner::Infer's checks: one model, distinct signatures, one shared input."""
    model, feed, seen, fetches = "", "", set(), []
    for task in tasks:
        if not task.model_spec.name:
            raise invalid_argument("Found ModelSpec with an empty model name.")
        if model and task.model_spec.name != model:
            raise invalid_argument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        model = task.model_spec.name
        key = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if key in seen:
            raise invalid_argument(f"Duplicate evaluation of signature: {key}")
        seen.add(key)
        if not servable.has_signature(key):
            raise invalid_argument(f"Requested signature not found in model graph: {key}")
        if task.method_name == CLASSIFY_METHOD:
            name, outputs = classification_tensors(servable.signature(key))
        elif task.method_name == REGRESS_METHOD:
            name, outputs = regression_tensors(servable.signature(key))
        else:
            raise ServingError(Code.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}")
        if feed and name != feed:
            raise invalid_argument("Input tensor must be the same for all Signatures.")
        feed = name
        fetches += outputs
    return feed, sorted(set(fetches))


def multi_inference(
    servable: Servable, request: inference_pb2.MultiInferenceRequest
) -> inference_pb2.MultiInferenceResponse:
    """MultiInference: every task's signature over one Session run of the shared serialized examples."""
    tasks = list(request.tasks)
    if not tasks:
        raise invalid_argument("Expected at least one task")
    feed, fetches = _task_tensors(servable, tasks)
    fetched = _run(servable, request.input, feed, fetches)
    rows = _rows(request.input)
    response = inference_pb2.MultiInferenceResponse()
    for task in tasks:
        signature = servable.signature(task.model_spec.signature_name or DEFAULT_SIGNATURE)
        result = response.results.add()
        if task.method_name == CLASSIFY_METHOD:
            result.classification_result.CopyFrom(classification_result(signature, rows, fetched))
        else:
            result.regression_result.CopyFrom(regression_result(signature, rows, fetched))
        result.model_spec.name = task.model_spec.name
        result.model_spec.signature_name = signature.key
        result.model_spec.version.value = servable.version
    return response
