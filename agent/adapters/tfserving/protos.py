"""TF Serving's protobuf and gRPC modules, imported without running TensorFlow.

Why: the generated ``tensorflow_serving`` modules import ``tensorflow.core.framework.*_pb2``, and importing
any ``tensorflow.*`` submodule normally executes ``tensorflow/__init__.py`` first, which loads the whole
runtime. The agent only needs the message classes, so while importing them the ``tensorflow`` package is
registered as a bare namespace (its ``__path__`` is the installed directory, found with
``importlib.util.find_spec``, which does not execute it). The stub is removed again afterwards: the submodules
stay in ``sys.modules`` and a later ``import tensorflow`` in the same process (tests that build SavedModels)
runs the real ``__init__`` and reuses them, so the import order does not matter. If real TensorFlow is
already imported, it is used as is.

Measured on this repo's venv (Python 3.11.7, tensorflow 2.21, protobuf 7, 2 CPUs shared with other work),
``/usr/bin/time -f "%e s %M KB" .venv/bin/python -c "import <module>"``, best of 3 runs:

    agent.adapters.tfserving.protos                  0.08 s    16.6 MB max RSS
    agent.adapters.tfserving.client                  0.27 s    48.2 MB max RSS  (adds grpc and numpy)
    tensorflow_serving.apis.predict_pb2     4.86 s   585.9 MB max RSS  (ordinary import: all of TensorFlow)

The gRPC stub modules (``model_service_pb2_grpc``, ``prediction_service_pb2_grpc``) import ``grpc``; they are
loaded on first attribute access so that the pure ``config_text`` module, which needs only
``model_server_config_pb2``, never pulls grpc in.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Re-exported for config_text; protobuf has no type stubs here (see the mypy overrides in pyproject.toml).
from google.protobuf import text_format

_TF = "tensorflow"


@contextmanager
def _tensorflow_namespace() -> Iterator[None]:
    """While the body runs, make ``tensorflow.*`` submodules importable without ``tensorflow/__init__.py``."""
    if _TF in sys.modules:
        yield
        return
    spec = importlib.util.find_spec(_TF)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the tensorflow package is not installed; pip install tensorflow-serving-api")
    stub = types.ModuleType(_TF, "namespace stand-in; see agent.adapters.tfserving.protos")
    stub_spec = importlib.machinery.ModuleSpec(_TF, None, is_package=True)
    stub_spec.submodule_search_locations = list(spec.submodule_search_locations)
    stub.__spec__ = stub_spec
    stub.__path__ = list(spec.submodule_search_locations)
    sys.modules[_TF] = stub
    try:
        yield
    finally:
        # Leave the real package importable later; the submodules loaded meanwhile stay cached and valid.
        if sys.modules.get(_TF) is stub:
            del sys.modules[_TF]


with _tensorflow_namespace():
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_management_pb2,
        predict_pb2,
        prediction_log_pb2,
    )
    from tensorflow_serving.config import model_server_config_pb2

_GRPC_MODULES = {
    "model_service_pb2_grpc": "tensorflow_serving.apis.model_service_pb2_grpc",
    "prediction_service_pb2_grpc": "tensorflow_serving.apis.prediction_service_pb2_grpc",
}


def __getattr__(name: str) -> Any:
    """Load the gRPC stub modules (which import grpc) only when a client asks for them."""
    if name not in _GRPC_MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _tensorflow_namespace():
        module: types.ModuleType = importlib.import_module(_GRPC_MODULES[name])
    globals()[name] = module
    return module


__all__ = [
    "get_model_metadata_pb2",
    "get_model_status_pb2",
    "meta_graph_pb2",
    "model_management_pb2",
    "model_server_config_pb2",
    "predict_pb2",
    "prediction_log_pb2",
    "saved_model_pb2",
    "tensor_pb2",
    "tensor_shape_pb2",
    "text_format",
    "types_pb2",
]
