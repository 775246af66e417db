"""numpy ⇄ TensorProto without TensorFlow, and REST JSON request shapes → tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from agent.adapters.tfserving import tensors
from agent.adapters.tfserving.base import TensorSpec
from agent.adapters.tfserving.protos import meta_graph_pb2, tensor_pb2, types_pb2
from agent.core.errors import GoldenFileError
from testkit.dtypes import NUMERIC as NUMERIC_DTYPES

NUMERIC = st.sampled_from(NUMERIC_DTYPES)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@given(NUMERIC.flatmap(lambda dt: hnp.arrays(dt, SHAPES)))
def test_numeric_round_trip(array: np.ndarray[Any, Any]) -> None:
    """Every numeric dtype (half and bool included) survives encode/decode bit for bit, shape and all."""
    back = tensors.from_proto(tensors.to_proto(array))
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    assert back.tobytes() == array.tobytes()


@given(hnp.arrays(object, SHAPES, elements=st.binary(max_size=8)))
def test_bytes_round_trip(array: np.ndarray[Any, Any]) -> None:
    """DT_STRING tensors travel as string_val and come back as object arrays of bytes."""
    back = tensors.from_proto(tensors.to_proto(array))
    assert back.dtype == object
    assert back.shape == array.shape
    assert back.reshape(-1).tolist() == array.reshape(-1).tolist()


def test_str_is_sent_as_utf8() -> None:
    """Python str inputs are encoded as UTF-8 bytes."""
    proto = tensors.to_proto(np.array(["é", "a"]))
    assert proto.dtype == types_pb2.DT_STRING
    assert list(proto.string_val) == ["é".encode(), b"a"]


def test_numeric_uses_tensor_content() -> None:
    """Numeric tensors use little-endian tensor_content, as TensorFlow itself sends them."""
    proto = tensors.to_proto(np.array([1.0, 2.0], dtype=np.float32))
    assert proto.tensor_content == np.array([1.0, 2.0], dtype="<f4").tobytes()
    assert not proto.float_val


@pytest.mark.parametrize(
    ("field", "dtype", "values", "expected"),
    [
        ("float_val", types_pb2.DT_FLOAT, [1.5, 2.5], np.array([1.5, 2.5], np.float32)),
        ("int_val", types_pb2.DT_INT32, [7], np.array([7, 7], np.int32)),
        ("int64_val", types_pb2.DT_INT64, [1, 2], np.array([1, 2], np.int64)),
        ("bool_val", types_pb2.DT_BOOL, [True, False], np.array([True, False])),
        ("half_val", types_pb2.DT_HALF, [0x3E00, 0x4100], np.array([1.5, 2.5], np.float16)),
        ("scomplex_val", types_pb2.DT_COMPLEX64, [1, 2, 3, 4], np.array([1 + 2j, 3 + 4j], np.complex64)),
    ],
)
def test_decodes_typed_value_fields(field: str, dtype: int, values: list[Any], expected: Any) -> None:
    """Answers in the typed *_val fields decode too; one value is repeated over the shape (a constant)."""
    proto = tensor_pb2.TensorProto(dtype=dtype)
    proto.tensor_shape.dim.add(size=2)
    getattr(proto, field).extend(values)
    got = tensors.from_proto(proto)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_too_many_values_is_an_error() -> None:
    """A TensorProto with more values than its shape holds is refused, not truncated."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1, 2, 3])
    proto.tensor_shape.dim.add(size=2)
    with pytest.raises(ValueError, match="carries 3 values"):
        tensors.from_proto(proto)


def test_signature_from_proto_maps_unknown_dims() -> None:
    """-1 dimensions become None and an unknown rank becomes shape None; DT_STRING maps to object."""
    sig = meta_graph_pb2.SignatureDef()
    x = sig.inputs["x"]
    x.dtype = types_pb2.DT_FLOAT
    x.tensor_shape.dim.add(size=-1)
    x.tensor_shape.dim.add(size=3)
    sig.inputs["s"].dtype = types_pb2.DT_STRING
    sig.inputs["s"].tensor_shape.unknown_rank = True
    sig.outputs["y"].dtype = types_pb2.DT_INT64
    parsed = tensors.signature_from_proto(sig)
    assert parsed.inputs["x"] == TensorSpec(np.dtype(np.float32), (None, 3))
    assert parsed.inputs["s"] == TensorSpec(np.dtype(object), None)
    assert parsed.outputs["y"] == TensorSpec(np.dtype(np.int64), ())


def test_zeros_for_fills_unknown_dims_with_one() -> None:
    """The smoke request has the signature's dtype, None dims as 1, an unknown rank as a scalar."""
    assert tensors.zeros_for(TensorSpec(np.dtype(np.float32), (None, 3))).shape == (1, 3)
    assert tensors.zeros_for(TensorSpec(np.dtype(np.int64), None)).shape == ()
    assert tensors.zeros_for(TensorSpec(np.dtype(object), (None,))).tolist() == [b""]


F32 = np.dtype(np.float32)


def test_instances_rows_with_one_unnamed_input() -> None:
    """Row format: bare instances stack into the signature's only input, cast to its dtype."""
    got = tensors.tensors_from_json({"instances": [[1, 2], [3, 4]]}, {"x": F32})
    assert got["x"].dtype == np.float32
    assert got["x"].tolist() == [[1, 2], [3, 4]]


def test_instances_rows_with_named_inputs() -> None:
    """Row format with objects: each key becomes a batched input; b64 objects become bytes."""
    rows = [{"x": 1.0, "s": {"b64": "aGk="}}, {"x": 2.0, "s": "yo"}]
    got = tensors.tensors_from_json({"instances": rows}, {"x": F32, "s": np.dtype(object)})
    assert got["x"].tolist() == [1.0, 2.0]
    assert got["s"].tolist() == [b"hi", b"yo"]


def test_columnar_inputs() -> None:
    """Columnar format: a mapping of whole tensors, or one bare tensor for a single-input signature."""
    got = tensors.tensors_from_json({"inputs": {"a": [1, 2], "b": [[1], [2]]}}, {"a": F32, "b": F32})
    assert got["a"].shape == (2,)
    assert got["b"].shape == (2, 1)
    assert tensors.tensors_from_json({"inputs": [5]}, {"x": F32})["x"].tolist() == [5.0]


@pytest.mark.parametrize(
    ("request_body", "dtypes", "message"),
    [
        ({"instances": [1, 2]}, {"a": F32, "b": F32}, "unnamed input needs a signature with one input"),
        ({"instances": [{"a": 1}, {"b": 2}]}, {"a": F32, "b": F32}, "same inputs"),
        ({"inputs": {"z": [1]}}, {"x": F32}, "input 'z' is not in the signature"),
        ({"inputs": {"x": [[1, 2], [3]]}}, {"x": F32}, "does not fit float32"),
        ({"inputs": {"x": ["a"]}}, {"x": F32}, "does not fit float32"),
        ({"rows": []}, {"x": F32}, 'needs "instances"'),
    ],
)
def test_json_errors_name_the_problem(
    request_body: dict[str, Any], dtypes: dict[str, Any], message: str
) -> None:
    """A request that does not fit the signature is a GoldenFileError saying which input and why."""
    with pytest.raises(GoldenFileError, match=message):
        tensors.tensors_from_json(request_body, dtypes)
