"""The agent imports TF Serving's protos without TensorFlow's runtime and never spoils a later real import."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_client_import_skips_tensorflow_runtime() -> None:
    """Importing the agent's client and gRPC stubs never imports tensorflow.python (ADR 0003)."""
    out = run(
        "import sys\n"
        "import agent.adapters.tfserving.client, agent.pipeline.warmup, agent.pipeline.validate\n"
        "from agent.adapters.tfserving import protos\n"
        "protos.model_service_pb2_grpc, protos.prediction_service_pb2_grpc\n"
        "print(sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.python')))\n"
    )
    assert out.strip() == "[]"


def test_real_tensorflow_still_imports_afterwards() -> None:
    """The namespace stand-in is gone after import: real TensorFlow loads later and shares the protos."""
    out = run(
        "from agent.adapters.tfserving import protos\n"
        "import tensorflow as tf\n"
        "proto = tf.make_tensor_proto([1.0, 2.0])\n"
        "print(type(proto) is protos.tensor_pb2.TensorProto, float(tf.reduce_sum(tf.constant([1.0, 2.0]))))\n"
    )
    assert out.split()[-2:] == ["True", "3.0"]


def test_real_tensorflow_first_is_used_as_is() -> None:
    """When TensorFlow is already imported (tests that build models), the protos come from it unchanged."""
    out = run(
        "import tensorflow as tf\n"
        "from agent.adapters.tfserving import protos\n"
        "from tensorflow.core.framework import tensor_pb2\n"
        "print(protos.tensor_pb2 is tensor_pb2, hasattr(tf, 'constant'))\n"
    )
    assert out.split()[-2:] == ["True", "True"]
