"""numpy ⇄ TensorProto without TensorFlow, and TF Serving's REST JSON request shapes → numpy.

The agent talks to TF Serving over gRPC but must not import TensorFlow (``tf.make_tensor_proto`` drags in the
whole runtime, see protos.py). Numeric tensors travel as little-endian ``tensor_content`` (what TF itself
sends), strings as ``string_val``; decoding accepts every representation TF Serving may answer with,
including a single repeated value broadcast to the whole shape. Golden files use the REST API's shapes
(``instances`` rows or ``inputs`` columns, ``{"b64": ...}`` for bytes) so users can paste a real request.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.adapters.tfserving.base import Signature, TensorSpec
from agent.adapters.tfserving.protos import meta_graph_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from agent.core.errors import GoldenFileError
from agent.core.golden import Golden

Array = npt.NDArray[Any]

NUMERIC_DTYPES: dict[int, np.dtype[Any]] = {
    types_pb2.DT_HALF: np.dtype(np.float16),
    types_pb2.DT_FLOAT: np.dtype(np.float32),
    types_pb2.DT_DOUBLE: np.dtype(np.float64),
    types_pb2.DT_INT8: np.dtype(np.int8),
    types_pb2.DT_INT16: np.dtype(np.int16),
    types_pb2.DT_INT32: np.dtype(np.int32),
    types_pb2.DT_INT64: np.dtype(np.int64),
    types_pb2.DT_UINT8: np.dtype(np.uint8),
    types_pb2.DT_UINT16: np.dtype(np.uint16),
    types_pb2.DT_UINT32: np.dtype(np.uint32),
    types_pb2.DT_UINT64: np.dtype(np.uint64),
    types_pb2.DT_BOOL: np.dtype(np.bool_),
    types_pb2.DT_COMPLEX64: np.dtype(np.complex64),
    types_pb2.DT_COMPLEX128: np.dtype(np.complex128),
}
_BY_NUMPY = {dtype: code for code, dtype in NUMERIC_DTYPES.items()}
STRING = np.dtype(object)
"""DT_STRING tensors are object arrays of ``bytes`` (TensorFlow's own numpy convention)."""

# Where each dtype's values live when TF Serving does not use tensor_content.
_VAL_FIELD = {
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val",
}


def numpy_dtype(code: int) -> np.dtype[Any]:
    """The numpy dtype for a TF DataType enum value; ValueError for types the agent cannot carry."""
    if code == types_pb2.DT_STRING:
        return STRING
    try:
        return NUMERIC_DTYPES[code]
    except KeyError:
        raise ValueError(f"unsupported TensorFlow dtype {types_pb2.DataType.Name(code)}") from None


def _is_text(array: Array) -> bool:
    return array.dtype.kind in "OSU"


def to_proto(value: npt.ArrayLike) -> tensor_pb2.TensorProto:
    """Encode an array (numeric, bool, or bytes/str) as a TensorProto."""
    array = np.asarray(value)
    proto = tensor_pb2.TensorProto()
    proto.tensor_shape.CopyFrom(_shape_proto(array.shape))
    if _is_text(array):
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(_as_bytes(item) for item in array.reshape(-1).tolist())
        return proto
    if array.dtype not in _BY_NUMPY:
        raise ValueError(f"cannot send numpy dtype {array.dtype} to TF Serving")
    proto.dtype = _BY_NUMPY[array.dtype]
    proto.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return proto


def _as_bytes(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    raise ValueError(f"a string tensor holds a {type(item).__name__}; only bytes and str can be sent")


def _shape_proto(shape: Sequence[int]) -> tensor_shape_pb2.TensorShapeProto:
    proto = tensor_shape_pb2.TensorShapeProto()
    for size in shape:
        proto.dim.add(size=size)
    return proto


def from_proto(proto: tensor_pb2.TensorProto) -> Array:
    """Decode a TensorProto from any of its representations into a numpy array of its shape."""
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == types_pb2.DT_STRING:
        flat: Array = np.empty(len(proto.string_val), dtype=object)
        flat[:] = list(proto.string_val)
        return _fill(flat, shape, count)
    dtype = numpy_dtype(proto.dtype)
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = list(getattr(proto, _VAL_FIELD[proto.dtype]))
    if proto.dtype == types_pb2.DT_HALF:
        flat = np.array(values, dtype=np.uint16).view(np.float16)
    elif dtype.kind == "c":
        flat = np.array(values, dtype=dtype.type().real.dtype).view(dtype)
    else:
        flat = np.array(values, dtype=dtype)
    return _fill(flat, shape, count)


def _fill(flat: Array, shape: tuple[int, ...], count: int) -> Array:
    """TF repeats the last value when fewer than ``count`` are given (a constant tensor sends one)."""
    if flat.size == count:
        return flat.reshape(shape)
    if flat.size == 0 or flat.size > count:
        raise ValueError(f"tensor of shape {shape} carries {flat.size} values")
    return np.concatenate([flat, np.repeat(flat[-1:], count - flat.size)]).reshape(shape)


def spec_from_info(info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    """A signature tensor's dtype and shape (-1 dims and unknown rank become None)."""
    dims = info.tensor_shape
    shape = None if dims.unknown_rank else tuple(d.size if d.size >= 0 else None for d in dims.dim)
    return TensorSpec(numpy_dtype(info.dtype), shape)


def signature_from_proto(signature: meta_graph_pb2.SignatureDef) -> Signature:
    """The agent's view of a SignatureDef (from GetModelMetadata or from saved_model.pb)."""
    return Signature(
        inputs={name: spec_from_info(info) for name, info in sorted(signature.inputs.items())},
        outputs={name: spec_from_info(info) for name, info in sorted(signature.outputs.items())},
    )


def cast(value: npt.ArrayLike, spec: TensorSpec) -> Array:
    """Convert a value to the dtype a signature input expects (str → utf-8 bytes for DT_STRING)."""
    array = np.asarray(value)
    if spec.dtype == STRING:
        flat: Array = np.empty(array.size, dtype=object)
        flat[:] = [_as_bytes(item) for item in array.reshape(-1).tolist()]
        return flat.reshape(array.shape)
    if _is_text(array):
        raise ValueError(f"text given where the signature expects {spec.dtype}")
    return array.astype(spec.dtype)


def zeros_for(spec: TensorSpec) -> Array:
    """A smoke-test input: zeros (b"" for strings) of the spec's dtype; a None dim is 1, no rank a scalar."""
    shape = tuple(1 if d is None else d for d in spec.shape or ())
    if spec.dtype == STRING:
        out: Array = np.empty(shape, dtype=object)
        out.fill(b"")
        return out
    return np.zeros(shape, dtype=spec.dtype)


# ---- REST JSON shapes --------------------------------------------------------------------------------------


def tensors_from_json(request: Mapping[str, Any], dtypes: Mapping[str, np.dtype[Any]]) -> dict[str, Array]:
    """Tensors for a REST request body: ``{"instances": [...]}`` (rows) or ``{"inputs": ...}`` (columns).

    ``dtypes`` are the signature's inputs; a bare (unnamed) value is allowed when there is exactly one input,
    as in TF Serving's REST API. Raises GoldenFileError naming what does not fit.
    """
    if "instances" in request:
        columns = _rows_to_columns(request["instances"], dtypes)
    elif "inputs" in request:
        columns = _named(request["inputs"], dtypes)
    else:
        raise GoldenFileError('the request needs "instances" (rows) or "inputs" (columns)')
    return {name: _array(name, value, dtypes) for name, value in columns.items()}


def _named(value: Any, dtypes: Mapping[str, np.dtype[Any]]) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if len(dtypes) != 1:
        raise GoldenFileError(
            f"an unnamed input needs a signature with one input; this one has {sorted(dtypes)}: "
            'name each input, e.g. {"x": ...}'
        )
    return {next(iter(dtypes)): value}


def _rows_to_columns(instances: Any, dtypes: Mapping[str, np.dtype[Any]]) -> dict[str, list[Any]]:
    if not isinstance(instances, list) or not instances:
        raise GoldenFileError('"instances" must be a non-empty list of rows')
    rows = [_named(row, dtypes) for row in instances]
    keys = set(rows[0])
    if any(set(row) != keys for row in rows):
        raise GoldenFileError('every row of "instances" must name the same inputs')
    return {key: [row[key] for row in rows] for key in sorted(keys)}


def _array(name: str, value: Any, dtypes: Mapping[str, np.dtype[Any]]) -> Array:
    if name not in dtypes:
        raise GoldenFileError(f"input {name!r} is not in the signature (inputs: {', '.join(sorted(dtypes))})")
    dtype = dtypes[name]
    try:
        raw = np.asarray(_decode_b64(value))
        if raw.dtype == STRING and dtype != STRING:
            raise ValueError("mixed or nested values")
        return cast(raw, TensorSpec(dtype, None))
    except (ValueError, TypeError) as err:
        raise GoldenFileError(
            f"input {name!r} does not fit {dtype} (ragged rows or wrong types?): {err}"
        ) from err


def _decode_b64(value: Any) -> Any:
    """``{"b64": "..."}`` is how REST carries binary strings."""
    if isinstance(value, list):
        return [_decode_b64(item) for item in value]
    if isinstance(value, Mapping):
        if set(value) == {"b64"} and isinstance(value["b64"], str):
            return base64.b64decode(value["b64"], validate=True)
        raise ValueError(f'unexpected object {value!r}; only {{"b64": ...}} is allowed inside a tensor')
    return value


def golden_inputs(golden: Golden, signature: Signature) -> dict[str, Array]:
    """The golden request as tensors of the signature's dtypes (GoldenFileError if it does not fit)."""
    dtypes = {name: spec.dtype for name, spec in signature.inputs.items()}
    try:
        return tensors_from_json(golden.request, dtypes)
    except GoldenFileError as err:
        raise GoldenFileError(f"{golden.origin}: {err}") from err
