"""The numeric numpy dtypes every TensorProto conversion must carry losslessly (agent and devserver tests)."""

from __future__ import annotations

import numpy as np

NUMERIC = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
    np.complex64,
    np.complex128,
]
