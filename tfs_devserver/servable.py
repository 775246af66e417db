"""One loaded SavedModel version: its signatures and a thread-safe way to run them.

Why both the proto and TensorFlow's loader: GetModelMetadata must return the SavedModel's own
``signature_def`` map (the stock server returns the MetaGraphDef's), and a corrupt ``saved_model.pb`` must
fail with the stock DATA_LOSS message, which needs a protobuf parse of our own; running the signatures is
TensorFlow's job (``tf.saved_model.load`` handles TF2 and TF1 signature-def SavedModels alike).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from tfs_devserver.status import Code, ServingError, from_exception

log = logging.getLogger("tensorflow.cc.saved_model.loader")

DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class TensorInfo:
    """A signature input or output: dtype and shape (None = unknown rank, -1 = unknown dimension)."""

    dtype: int
    shape: tuple[int, ...] | None

    @classmethod
    def from_proto(cls, info: meta_graph_pb2.TensorInfo) -> TensorInfo:
        if info.tensor_shape.unknown_rank:
            return cls(info.dtype, None)
        return cls(info.dtype, tuple(d.size for d in info.tensor_shape.dim))


@dataclass(frozen=True)
class Signature:
    """A SignatureDef reduced to what request handling checks."""

    key: str
    method_name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]

    @classmethod
    def from_proto(cls, key: str, proto: meta_graph_pb2.SignatureDef) -> Signature:
        return cls(
            key=key,
            method_name=proto.method_name,
            inputs={k: TensorInfo.from_proto(v) for k, v in proto.inputs.items()},
            outputs={k: TensorInfo.from_proto(v) for k, v in proto.outputs.items()},
        )


class Servable:
    """A loaded version. ``run`` may be called from many threads at once."""

    def __init__(
        self, name: str, version: int, path: str, meta_graph: meta_graph_pb2.MetaGraphDef, model: Any
    ):
        self.name = name
        self.version = version
        self.path = path
        self._signature_defs = dict(meta_graph.signature_def)
        self._model = model
        self._functions: dict[str, Any] = dict(model.signatures.items())
        # Parsed once: the request path looks a signature up on every call.
        self._signatures = {k: Signature.from_proto(k, v) for k, v in self._signature_defs.items()}

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        """The MetaGraphDef's signature_def map, as GetModelMetadata returns it."""
        result = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in self._signature_defs.items():
            result.signature_def[key].CopyFrom(sig)
        return result

    def signature(self, key: str) -> Signature:
        """The named signature; FAILED_PRECONDITION with the stock message if it does not exist."""
        key = key or DEFAULT_SIGNATURE
        if key not in self._signature_defs or key not in self._functions:
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        return self._signatures[key]

    def run(self, key: str, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        """Run a signature on already validated inputs; TensorFlow errors keep their code and message."""
        import tensorflow as tf

        function = self._functions[key or DEFAULT_SIGNATURE]
        try:
            outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
        except Exception as exc:
            raise from_exception(exc) from exc
        return {k: v.numpy() for k, v in outputs.items()}


def _read_saved_model(path: str) -> saved_model_pb2.SavedModel:
    pb = os.path.join(path, "saved_model.pb")
    if not os.path.exists(pb):
        raise ServingError(
            Code.NOT_FOUND,
            f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}. Check that "
            "the directory exists and that you have the right permissions for accessing it.",
        )
    try:
        with open(pb, "rb") as handle:
            return saved_model_pb2.SavedModel.FromString(handle.read())
    except (DecodeError, OSError) as exc:
        raise ServingError(Code.DATA_LOSS, f"Can't parse {pb} as binary proto") from exc


def _meta_graph(saved_model: saved_model_pb2.SavedModel, tags: list[str]) -> meta_graph_pb2.MetaGraphDef:
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    shown = " ".join(tags)
    raise ServingError(
        Code.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {shown} }}. To inspect available tag-sets "
        "in the SavedModel, please use the SavedModel CLI: `saved_model_cli`",
    )


def load_servable(name: str, version: int, path: str, tags: list[str]) -> Servable:
    """Load one version from its directory; raises ServingError with the stock code and message."""
    log.info("Reading SavedModel from: %s", path)
    meta_graph = _meta_graph(_read_saved_model(path), tags)
    import tensorflow as tf

    try:
        model = tf.saved_model.load(path, tags=tags)
    except Exception as exc:
        raise from_exception(exc) from exc
    log.info("SavedModel load for tags { %s }; Status: success: OK.", " ".join(tags))
    return Servable(name, version, path, meta_graph, model)
