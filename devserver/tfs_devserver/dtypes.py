"""TensorFlow's DataType table as the stand-in needs it: numpy dtype and ``DataTypeString`` name per enum.

Why its own table (not the agent's): the stand-in is the oracle the agent is tested against, so it states
TensorFlow's mapping itself, from ``tensorflow/core/framework/types.proto`` and ``types.cc``
(``DataTypeString``), rather than sharing the agent's assumptions. ``tests/devserver/test_tensors.py`` checks
it against TensorFlow's own ``tf.dtypes`` at test time.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
from tensorflow.core.framework import types_pb2

# DataType -> (numpy dtype, DataTypeString name), for every dtype a request or response may carry.
TABLE: dict[int, tuple[np.dtype[Any], str]] = {
    types_pb2.DT_FLOAT: (np.dtype(np.float32), "float"),
    types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double"),
    types_pb2.DT_HALF: (np.dtype(np.float16), "half"),
    types_pb2.DT_BFLOAT16: (np.dtype(ml_dtypes.bfloat16), "bfloat16"),
    types_pb2.DT_INT8: (np.dtype(np.int8), "int8"),
    types_pb2.DT_INT16: (np.dtype(np.int16), "int16"),
    types_pb2.DT_INT32: (np.dtype(np.int32), "int32"),
    types_pb2.DT_INT64: (np.dtype(np.int64), "int64"),
    types_pb2.DT_UINT8: (np.dtype(np.uint8), "uint8"),
    types_pb2.DT_UINT16: (np.dtype(np.uint16), "uint16"),
    types_pb2.DT_UINT32: (np.dtype(np.uint32), "uint32"),
    types_pb2.DT_UINT64: (np.dtype(np.uint64), "uint64"),
    types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool"),
    types_pb2.DT_COMPLEX64: (np.dtype(np.complex64), "complex64"),
    types_pb2.DT_COMPLEX128: (np.dtype(np.complex128), "complex128"),
    # DT_STRING tensors are object arrays of ``bytes`` (TensorFlow's own numpy convention).
    types_pb2.DT_STRING: (np.dtype(object), "string"),
}
NUMPY: dict[int, np.dtype[Any]] = {code: dtype for code, (dtype, _) in TABLE.items()}
NAMES: dict[int, str] = {code: name for code, (_, name) in TABLE.items()}
