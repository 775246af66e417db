"""TensorProto <-> numpy conversion: lossless both ways for the common dtypes, clear errors otherwise.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorflow.core.framework import tensor_pb2, types_pb2

from testkit.dtypes import NUMERIC
from tfs_devserver.status import Code, ServingError
from tfs_devserver.tensors import dtype_name, from_numpy, to_numpy


def _same(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.tobytes() == b.tobytes()


@settings(max_examples=60, deadline=None)
@given(
    array=st.sampled_from(NUMERIC).flatmap(
        lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))
    ),
    tensor_content=st.booleans(),
)
def test_numeric_round_trip_is_bit_exact(array: np.ndarray[Any, Any], tensor_content: bool) -> None:
    """Every numeric dtype survives numpy -> TensorProto -> numpy bit for bit, in both encodings."""
    back = to_numpy(from_numpy(array, use_tensor_content=tensor_content))
    assert _same(array, back)


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.binary(max_size=8), min_size=0, max_size=6))
def test_bytes_round_trip(values: list[bytes]) -> None:
    """DT_STRING tensors keep arbitrary bytes."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    back = to_numpy(from_numpy(array))
    assert back.dtype == object
    assert list(back) == values


def test_str_is_encoded_as_utf8() -> None:
    """Unicode strings become UTF-8 DT_STRING values."""
    proto = from_numpy(np.array(["é", "x"]))
    assert (proto.dtype, list(proto.string_val)) == (types_pb2.DT_STRING, ["é".encode(), b"x"])


def test_responses_use_typed_fields() -> None:
    """Responses fill float_val (what clients read), not tensor_content."""
    proto = from_numpy(np.array([1.5, 2.5], dtype=np.float32))
    assert (list(proto.float_val), proto.tensor_content) == ([1.5, 2.5], b"")


def test_fewer_typed_values_repeat_the_last_and_none_gives_zeros() -> None:
    """TensorFlow's rule: missing values repeat the last one; no values at all means zeros."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[1, 2])
    for size in (2, 2):
        proto.tensor_shape.dim.add(size=size)
    assert to_numpy(proto).tolist() == [[1, 2], [2, 2]]
    del proto.int_val[:]
    assert to_numpy(proto).tolist() == [[0, 0], [0, 0]]


@pytest.mark.parametrize(
    ("proto", "text"),
    [
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_RESOURCE), "Unsupported tensor dtype: resource"),
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1, 2, 3]), "holds 3 values"),
        (
            tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"abc"),
            "tensor_content holds 3 bytes",
        ),
    ],
)
def test_bad_tensors_are_invalid_argument(proto: tensor_pb2.TensorProto, text: str) -> None:
    """Malformed tensors give INVALID_ARGUMENT naming the problem."""
    with pytest.raises(ServingError) as error:
        to_numpy(proto)
    assert error.value.code is Code.INVALID_ARGUMENT
    assert text in error.value.message


def test_dtype_names_match_tensorflow() -> None:
    """Messages use TensorFlow's dtype names."""
    assert [dtype_name(d) for d in (types_pb2.DT_FLOAT, types_pb2.DT_STRING, types_pb2.DT_HALF)] == [
        "float",
        "string",
        "half",
    ]


def test_dtype_table_agrees_with_tensorflow() -> None:
    """The stand-in's own DataType table gives TensorFlow's numpy dtype and DataTypeString name for each."""
    import tensorflow as tf

    from tfs_devserver.dtypes import TABLE

    for code, (dtype, name) in TABLE.items():
        assert name == types_pb2.DataType.Name(code).removeprefix("DT_").lower()  # DataTypeString's rule
        tf_dtype = tf.dtypes.as_dtype(code)
        expected = np.dtype(object) if code == types_pb2.DT_STRING else np.dtype(tf_dtype.as_numpy_dtype)
        assert dtype == expected, types_pb2.DataType.Name(code)


def test_state_numbers_are_get_model_status_protos() -> None:
    """The stand-in's own ManagerState numbers are ModelVersionStatus.State's (B14)."""
    from tensorflow_serving.apis import get_model_status_pb2

    from tfs_devserver.monitor import ManagerState

    proto = get_model_status_pb2.ModelVersionStatus.State
    assert {s.name: int(s) for s in ManagerState} == dict(proto.items())
