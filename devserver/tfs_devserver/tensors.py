"""Lossless conversion between ``tensorflow.TensorProto`` and numpy arrays.

Why not ``tf.make_ndarray``/``tf.make_tensor_proto``: the request path must validate what clients send (an
unsupported dtype, a value count that does not fit the shape) and answer with INVALID_ARGUMENT naming the
problem, and responses must use the typed ``*_val`` fields like the stock server (clients read
``outputs["y"].float_val``). Both directions accept either ``tensor_content`` or the typed fields.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from tfs_devserver.dtypes import NAMES, NUMPY
from tfs_devserver.status import invalid_argument

TensorProto = tensor_pb2.TensorProto
_NUMPY = NUMPY
_DATATYPE: dict[np.dtype[Any], int] = {v: k for k, v in _NUMPY.items()}
_TF_NAMES = NAMES


def dtype_name(datatype: int) -> str:
    """TensorFlow's name for a DataType enum value (``float``, ``int32``, ``string``...)."""
    if datatype in _TF_NAMES:
        return _TF_NAMES[datatype]
    name: str = (
        types_pb2.DataType.Name(datatype) if datatype in types_pb2.DataType.values() else str(datatype)
    )
    return name.removeprefix("DT_").lower()


def numpy_dtype(datatype: int) -> np.dtype[Any]:
    """The numpy dtype for a DataType; INVALID_ARGUMENT if the devserver does not convert it."""
    try:
        return _NUMPY[datatype]
    except KeyError:
        raise invalid_argument(f"Unsupported tensor dtype: {dtype_name(datatype)}") from None


def datatype_of(array: np.ndarray[Any, Any]) -> int:
    """The DataType for a numpy array (unicode and bytes arrays become DT_STRING)."""
    if array.dtype.kind in "OUS":
        return int(types_pb2.DT_STRING)
    try:
        return _DATATYPE[array.dtype.newbyteorder("=")]
    except KeyError:
        raise invalid_argument(f"Unsupported numpy dtype: {array.dtype}") from None


def shape_of(proto: tensor_pb2.TensorProto) -> tuple[int, ...]:
    """The proto's fully defined shape; INVALID_ARGUMENT for unknown rank or dimensions."""
    if proto.tensor_shape.unknown_rank:
        raise invalid_argument("Tensor shape has unknown rank")
    dims = tuple(d.size for d in proto.tensor_shape.dim)
    if any(d < 0 for d in dims):
        raise invalid_argument(f"Tensor shape has an unknown or negative dimension: {list(dims)}")
    return dims


def _typed_values(proto: tensor_pb2.TensorProto, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """The values held in the proto's typed ``*_val`` field for its dtype."""
    dt = proto.dtype
    if dt == types_pb2.DT_STRING:
        out = np.empty(len(proto.string_val), dtype=object)
        out[:] = list(proto.string_val)
        return out
    if dt in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        return np.array(proto.half_val, dtype=np.uint16).view(dtype)
    if dt in (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128):
        field = proto.scomplex_val if dt == types_pb2.DT_COMPLEX64 else proto.dcomplex_val
        parts = np.array(field, dtype=np.float32 if dt == types_pb2.DT_COMPLEX64 else np.float64)
        if parts.size % 2:
            raise invalid_argument("Complex tensor has an odd number of real/imaginary parts")
        return parts.view(dtype)
    source = {
        types_pb2.DT_FLOAT: proto.float_val,
        types_pb2.DT_DOUBLE: proto.double_val,
        types_pb2.DT_INT64: proto.int64_val,
        types_pb2.DT_BOOL: proto.bool_val,
        types_pb2.DT_UINT32: proto.uint32_val,
        types_pb2.DT_UINT64: proto.uint64_val,
    }.get(dt, proto.int_val)
    return np.array(source, dtype=dtype)


def _from_content(proto: tensor_pb2.TensorProto, dtype: np.dtype[Any], count: int) -> np.ndarray[Any, Any]:
    """Decode ``tensor_content`` (little-endian raw bytes)."""
    if proto.dtype == types_pb2.DT_STRING:
        raise invalid_argument("DT_STRING tensors cannot use tensor_content")
    if len(proto.tensor_content) != count * dtype.itemsize:
        raise invalid_argument(
            f"tensor_content holds {len(proto.tensor_content)} bytes but shape and dtype need "
            f"{count * dtype.itemsize}"
        )
    return np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype)


def to_numpy(proto: tensor_pb2.TensorProto) -> np.ndarray[Any, Any]:
    """Decode a TensorProto; fewer typed values than elements repeat the last one (TensorFlow's rule)."""
    dtype = numpy_dtype(proto.dtype)
    shape = shape_of(proto)
    count = math.prod(shape)
    if proto.tensor_content:
        return _from_content(proto, dtype, count).reshape(shape)
    values = _typed_values(proto, dtype)
    if values.size > count:
        raise invalid_argument(f"Tensor holds {values.size} values but its shape {list(shape)} has {count}")
    if values.size == 0:
        return np.zeros(shape, dtype=dtype) if proto.dtype != types_pb2.DT_STRING else _empty_strings(shape)
    if values.size < count:
        values = np.concatenate([values, np.repeat(values[-1:], count - values.size)])
    return values.reshape(shape)


def _empty_strings(shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    out = np.empty(shape, dtype=object)
    out.fill(b"")
    return out


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, np.bytes_ | np.str_):
        return _as_bytes(value.item())
    raise invalid_argument(f"String tensor element is neither bytes nor str: {type(value).__name__}")


def _fill_typed(proto: tensor_pb2.TensorProto, flat: np.ndarray[Any, Any]) -> None:
    """Write values into the typed field TensorFlow's ``AsProtoField`` uses for the dtype."""
    dt = proto.dtype
    fill: dict[int, Callable[[], None]] = {
        types_pb2.DT_STRING: lambda: proto.string_val.extend(_as_bytes(v) for v in flat),
        types_pb2.DT_FLOAT: lambda: proto.float_val.extend(flat.tolist()),
        types_pb2.DT_DOUBLE: lambda: proto.double_val.extend(flat.tolist()),
        types_pb2.DT_INT64: lambda: proto.int64_val.extend(flat.tolist()),
        types_pb2.DT_BOOL: lambda: proto.bool_val.extend(flat.tolist()),
        types_pb2.DT_UINT32: lambda: proto.uint32_val.extend(flat.tolist()),
        types_pb2.DT_UINT64: lambda: proto.uint64_val.extend(flat.tolist()),
        types_pb2.DT_HALF: lambda: proto.half_val.extend(flat.view(np.uint16).tolist()),
        types_pb2.DT_BFLOAT16: lambda: proto.half_val.extend(flat.view(np.uint16).tolist()),
        types_pb2.DT_COMPLEX64: lambda: proto.scomplex_val.extend(flat.view(np.float32).tolist()),
        types_pb2.DT_COMPLEX128: lambda: proto.dcomplex_val.extend(flat.view(np.float64).tolist()),
    }
    filler = fill.get(dt)
    if filler is None:
        proto.int_val.extend(flat.tolist())
    else:
        filler()


def from_numpy(value: object, *, use_tensor_content: bool = False) -> tensor_pb2.TensorProto:
    """Encode an array-like; typed ``*_val`` fields by default, raw ``tensor_content`` on request."""
    array = np.asarray(value)
    proto = tensor_pb2.TensorProto(dtype=datatype_of(array))
    proto.tensor_shape.CopyFrom(
        tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]
        )
    )
    if proto.dtype == types_pb2.DT_STRING:
        proto.string_val.extend(_as_bytes(v) for v in array.reshape(-1))
    elif use_tensor_content:
        native = array.astype(array.dtype.newbyteorder("<"), copy=False)
        proto.tensor_content = native.tobytes()
    else:
        _fill_typed(proto, np.ascontiguousarray(array).reshape(-1))
    return proto
