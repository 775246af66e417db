"""Predict, Classify and Regress on one servable, independent of gRPC or REST (B16, B18).

Why transport-free: both front ends must give the same checks and messages; they differ only in how tensors
are encoded. Requests are validated against the SignatureDef before TensorFlow sees them, so a wrong dtype or
shape gets INVALID_ARGUMENT naming the input instead of a stack trace.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from tfs_devserver.servable import Servable, Signature, TensorInfo
from tfs_devserver.status import invalid_argument
from tfs_devserver.tensors import datatype_of, dtype_name

Array = np.ndarray[Any, Any]
CLASSES, SCORES, REGRESS_OUTPUT = "classes", "scores", "outputs"


def _check_keys(signature: Signature, inputs: dict[str, Array]) -> None:
    sent, wanted = sorted(inputs), sorted(signature.inputs)
    if len(sent) != len(wanted):
        extra = sorted(set(sent) - set(wanted))
        missing = sorted(set(wanted) - set(sent))
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(wanted)} len({{{','.join(sent)}}}) != "
            f"len({{{','.join(wanted)}}}). Sent extra: {{{','.join(extra)}}}. "
            f"Missing but required: {{{','.join(missing)}}}."
        )
    for alias in sent:
        if alias not in signature.inputs:
            raise invalid_argument(
                f"input tensor alias not found in signature: {alias}. Inputs expected to be in the set "
                f"{{{','.join(wanted)}}}."
            )


def _shape_ok(expected: tuple[int, ...] | None, actual: tuple[int, ...]) -> bool:
    if expected is None:
        return True
    return len(expected) == len(actual) and all(e in (-1, a) for e, a in zip(expected, actual, strict=True))


def _check_tensor(index: int, alias: str, info: TensorInfo, value: Array) -> None:
    got = datatype_of(value)
    if got != info.dtype:
        raise invalid_argument(
            f"Expects arg[{index}] to be {dtype_name(info.dtype)} but {dtype_name(got)} is provided"
        )
    if not _shape_ok(info.shape, value.shape):
        wanted = "unknown rank" if info.shape is None else str(list(info.shape)).replace(" ", "")
        raise invalid_argument(
            f"Input '{alias}' has shape {list(value.shape)} which is incompatible with the signature's "
            f"shape {wanted} (-1 = any size)".replace(" ,", ",")
        )


def validate_inputs(signature: Signature, inputs: dict[str, Array]) -> None:
    """Aliases, dtypes and shapes of a request against the signature, with the stock messages."""
    _check_keys(signature, inputs)
    for index, alias in enumerate(sorted(signature.inputs)):
        _check_tensor(index, alias, signature.inputs[alias], inputs[alias])


def _output_keys(signature: Signature, output_filter: list[str]) -> list[str]:
    if not output_filter:
        return sorted(signature.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def predict(
    servable: Servable, signature_name: str, inputs: dict[str, Array], output_filter: list[str] | None = None
) -> dict[str, Array]:
    """Run a Predict on one servable; returns the (filtered) outputs by alias."""
    signature = servable.signature(signature_name)
    validate_inputs(signature, inputs)
    keys = _output_keys(signature, output_filter or [])
    outputs = servable.run(signature.key, inputs)
    return {k: outputs[k] for k in keys}


def serialized_examples(request_input: input_pb2.Input) -> Array:
    """InputToSerializedExampleTensor: one serialized tf.Example per row, context prepended."""
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


def _single_input(signature: Signature, what: str) -> str:
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    alias = next(iter(signature.inputs))
    if signature.inputs[alias].dtype != datatype_of(np.array([b""], dtype=object)):
        raise invalid_argument(f"{what} signature input must be a string tensor of serialized tf.Examples")
    return alias


def classify(
    servable: Servable, signature_name: str, request_input: input_pb2.Input
) -> classification_pb2.ClassificationResult:
    """Classify: the signature takes serialized Examples and yields ``classes`` and/or ``scores``."""
    signature = servable.signature(signature_name)
    alias = _single_input(signature, "Classification")
    if CLASSES not in signature.outputs and SCORES not in signature.outputs:
        raise invalid_argument("Expected classification signature outputs to contain classes and/or scores.")
    examples = serialized_examples(request_input)
    outputs = servable.run(signature.key, {alias: examples})
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    result = classification_pb2.ClassificationResult()
    for row in range(len(examples)):
        entry = result.classifications.add()
        width = (classes if classes is not None else scores).shape[1]  # type: ignore[union-attr]
        for col in range(width):
            item = entry.classes.add()
            if classes is not None:
                item.label = bytes(classes[row][col]).decode("utf-8", "replace")
            if scores is not None:
                item.score = float(scores[row][col])
    return result


def regress(
    servable: Servable, signature_name: str, request_input: input_pb2.Input
) -> regression_pb2.RegressionResult:
    """Regress: serialized Examples in, ``outputs`` of shape [batch] or [batch, 1] out."""
    signature = servable.signature(signature_name)
    alias = _single_input(signature, "Regression")
    if REGRESS_OUTPUT not in signature.outputs:
        raise invalid_argument("No output Tensor named 'outputs' in the regression signature.")
    examples = serialized_examples(request_input)
    values = servable.run(signature.key, {alias: examples})[REGRESS_OUTPUT].reshape(len(examples), -1)
    result = regression_pb2.RegressionResult()
    for row in range(len(examples)):
        result.regressions.add(value=float(values[row][0]))
    return result
