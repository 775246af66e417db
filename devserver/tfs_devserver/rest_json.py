"""TF Serving's REST JSON encodings: row ("instances") and columnar ("inputs") requests, outputs, Examples.

Why its own module: the rules are fiddly (named vs. unnamed instances, ``{"b64": ...}`` for bytes, outputs
whose alias ends in ``_bytes`` come back base64-encoded, a batch dimension shared by every output in row
format) and worth testing without a server.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import Message
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import input_pb2

from tfs_devserver.servable import Signature
from tfs_devserver.status import invalid_argument
from tfs_devserver.tensors import numpy_dtype

Array = np.ndarray[Any, Any]


def proto_json(message: Message) -> dict[str, Any]:
    """A proto as the stock REST layer prints it: proto field names, defaults included, enums by name."""
    result: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return result


def _is_b64(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _decode_b64(value: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(str(value["b64"]), validate=True)
    except binascii.Error as exc:
        raise invalid_argument(f"Unable to base64 decode: {exc}") from exc


def _bytes_leaves(value: Any) -> Any:
    if isinstance(value, list):
        return [_bytes_leaves(v) for v in value]
    if _is_b64(value):
        return _decode_b64(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise invalid_argument(f'Expected a string or {{"b64": ...}} value for a string tensor, got: {value!r}')


def to_array(value: Any, dtype: int, alias: str) -> Array:
    """A JSON value as an array of the signature's dtype; INVALID_ARGUMENT naming the input otherwise."""
    np_dtype = numpy_dtype(dtype)
    try:
        if np_dtype == np.dtype(object):
            leaves = _bytes_leaves(value)
            array = np.array(leaves, dtype=object)
            if any(not isinstance(v, bytes) for v in array.reshape(-1)):
                raise ValueError("ragged string list")
            return array
        if _contains_non_numbers(value):
            raise ValueError("non-numeric value")
        return np.array(value, dtype=np_dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise invalid_argument(
            f"Failed to convert JSON value of input '{alias}' to a tensor of type {np_dtype.name}: {exc}"
        ) from exc


def _contains_non_numbers(value: Any) -> bool:
    if isinstance(value, list):
        return any(_contains_non_numbers(v) for v in value)
    return not isinstance(value, int | float)


def _named(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _row_inputs(instances: Any, signature: Signature) -> dict[str, Array]:
    if not isinstance(instances, list) or not instances:
        raise invalid_argument("'instances' must be a non-empty JSON list")
    aliases = sorted(signature.inputs)
    if all(_named(i) for i in instances):
        columns: dict[str, list[Any]] = {a: [] for a in aliases}
        for index, instance in enumerate(instances):
            if set(instance) != set(aliases):
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: {instance} keys "
                    f"do not match the signature inputs {{{','.join(aliases)}}}"
                )
            for alias in aliases:
                columns[alias].append(instance[alias])
        return {a: to_array(columns[a], signature.inputs[a].dtype, a) for a in aliases}
    if len(aliases) != 1:
        raise invalid_argument(
            f"The signature has {len(aliases)} inputs ({','.join(aliases)}); each instance must be a JSON "
            "object naming them"
        )
    return {aliases[0]: to_array(instances, signature.inputs[aliases[0]].dtype, aliases[0])}


def _columnar_inputs(inputs: Any, signature: Signature) -> dict[str, Array]:
    aliases = sorted(signature.inputs)
    if _named(inputs):
        # An alias the signature lacks is passed through so that the Predict checks name it.
        return {
            k: to_array(v, signature.inputs[k].dtype, k)
            if k in signature.inputs
            else np.array(v, dtype=object)
            for k, v in inputs.items()
        }
    if len(aliases) != 1:
        raise invalid_argument(
            f"The signature has {len(aliases)} inputs; 'inputs' must be a JSON object naming them"
        )
    return {aliases[0]: to_array(inputs, signature.inputs[aliases[0]].dtype, aliases[0])}


def request_inputs(body: dict[str, Any], signature: Signature) -> tuple[dict[str, Array], bool]:
    """(inputs, is_row_format) of a :predict body."""
    if "instances" in body and "inputs" in body:
        raise invalid_argument(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exists"
        )
    if "instances" in body:
        return _row_inputs(body["instances"], signature), True
    if "inputs" in body:
        return _columnar_inputs(body["inputs"], signature), False
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _json_value(array: Array, alias: str) -> Any:
    if array.dtype == np.dtype(object):
        if alias.endswith("_bytes"):
            encode = np.frompyfunc(lambda b: {"b64": base64.b64encode(bytes(b)).decode("ascii")}, 1, 1)
        else:
            encode = np.frompyfunc(lambda b: bytes(b).decode("utf-8", "replace"), 1, 1)
        encoded = encode(array)
        return encoded.tolist() if isinstance(encoded, np.ndarray) else encoded
    if array.dtype.kind == "c":
        return np.stack([array.real, array.imag], axis=-1).tolist()
    return array.astype(np.float64).tolist() if array.dtype.kind == "f" else array.tolist()


def predict_response(outputs: dict[str, Array], row: bool) -> dict[str, Any]:
    """``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar)."""
    if not row:
        if len(outputs) == 1:
            return {"outputs": _json_value(next(iter(outputs.values())), next(iter(outputs)))}
        return {"outputs": {k: _json_value(v, k) for k, v in outputs.items()}}
    sizes = {k: (v.shape[0] if v.ndim else -1) for k, v in outputs.items()}
    if len(set(sizes.values())) > 1 or -1 in sizes.values():
        raise invalid_argument(f"Tensors in the output have inconsistent batch sizes for row format: {sizes}")
    if len(outputs) == 1:
        alias, value = next(iter(outputs.items()))
        return {"predictions": _json_value(value, alias)}
    columns = {k: _json_value(v, k) for k, v in outputs.items()}
    batch = next(iter(sizes.values()))
    return {"predictions": [{k: columns[k][i] for k in columns} for i in range(batch)]}


def _feature(value: Any) -> feature_pb2.Feature:
    values = value if isinstance(value, list) else [value]
    if all(isinstance(v, bool) for v in values) or all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[int(v) for v in values]))
    if all(isinstance(v, int | float) for v in values):
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[float(v) for v in values]))
    return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=list(_bytes_leaves(values))))


def _example(features: Any) -> example_pb2.Example:
    if not isinstance(features, dict):
        raise invalid_argument("Each example must be a JSON object of feature name to value(s)")
    example = example_pb2.Example()
    for name, value in features.items():
        example.features.feature[name].CopyFrom(_feature(value))
    return example


def examples_input(body: dict[str, Any]) -> input_pb2.Input:
    """The Input of a :classify/:regress body (``examples`` plus optional ``context``)."""
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid_argument("Missing or empty 'examples' list")
    result = input_pb2.Input()
    if "context" in body:
        target = result.example_list_with_context
        target.context.CopyFrom(_example(body["context"]))
    else:
        target = result.example_list
    for features in examples:
        target.examples.add().CopyFrom(_example(features))
    return result
