"""One loaded SavedModel version, the way TF Serving's ``SavedModelBundle`` holds it (B23).

Why a Session, not ``tf.saved_model.load``: TF Serving imports the MetaGraph tagged ``serve`` into a TF
Session (variables restored, the main/legacy-init op run with the asset paths fed) and runs signatures by
feeding and fetching *tensor names* from the MetaGraphDef's SignatureDefs. TF2's Python loader instead
re-traces TF1 graphs into functions, which fails on some Estimator exports (ParseExample shape inference) and
checks input shapes the stock server never checks. A Session loads TF1 graphs and TF2 exports alike, its
``Run`` releases the GIL, and op errors come back with TF's own code and message (docs/decisions/0010).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from tfs_devserver.status import Code, ServingError, from_exception

log = logging.getLogger("tensorflow.cc.saved_model.loader")

DEFAULT_SIGNATURE = "serving_default"
Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class TensorInfo:
    """A signature input or output: graph tensor name, dtype and declared shape (None = unknown rank)."""

    dtype: int
    shape: tuple[int, ...] | None
    name: str = ""

    @classmethod
    def from_proto(cls, info: meta_graph_pb2.TensorInfo) -> TensorInfo:
        shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
        return cls(info.dtype, shape, info.name)


@dataclass(frozen=True)
class Signature:
    """A SignatureDef reduced to what request handling needs."""

    key: str
    method_name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    proto: meta_graph_pb2.SignatureDef = field(default_factory=meta_graph_pb2.SignatureDef)

    @classmethod
    def from_proto(cls, key: str, proto: meta_graph_pb2.SignatureDef) -> Signature:
        return cls(
            key=key,
            method_name=proto.method_name,
            inputs={k: TensorInfo.from_proto(v) for k, v in proto.inputs.items()},
            outputs={k: TensorInfo.from_proto(v) for k, v in proto.outputs.items()},
            proto=proto,
        )


class Servable:
    """A loaded version: its MetaGraphDef's signatures and the Session they run in (thread-safe)."""

    def __init__(
        self, name: str, version: int, path: str, meta_graph: meta_graph_pb2.MetaGraphDef, session: Any
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self._signature_defs = dict(meta_graph.signature_def)
        self._signatures = {k: Signature.from_proto(k, v) for k, v in self._signature_defs.items()}
        self._session = session
        # One compiled callable per (feeds, fetches): Session::MakeCallable, so a request costs one Run.
        self._callables: dict[tuple[tuple[str, ...], tuple[str, ...]], Callable[..., list[Array]]] = {}
        self._lock = threading.Lock()

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        """The MetaGraphDef's signature_def map, as GetModelMetadata returns it."""
        result = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in self._signature_defs.items():
            result.signature_def[key].CopyFrom(sig)
        return result

    def signature(self, key: str) -> Signature:
        """The named signature; FAILED_PRECONDITION with the stock message if it does not exist."""
        key = key or DEFAULT_SIGNATURE
        if key not in self._signatures:
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        return self._signatures[key]

    def has_signature(self, key: str) -> bool:
        """True if the MetaGraphDef has a signature under ``key``."""
        return key in self._signatures

    def run(self, feeds: dict[str, Array], fetches: Sequence[str]) -> list[Array]:
        """``Session::Run``: feed and fetch by graph tensor name; TF errors keep their code and message."""
        call = self._callable(tuple(feeds), tuple(fetches))
        try:
            return call(*feeds.values())
        except Exception as exc:
            raise from_exception(exc) from exc

    def _callable(self, feeds: tuple[str, ...], fetches: tuple[str, ...]) -> Callable[..., list[Array]]:
        key = (feeds, fetches)
        found = self._callables.get(key)
        if found is not None:
            return found
        with self._lock:
            if key not in self._callables:
                options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
                try:
                    # The public make_callable() falls back to Session.run when given feeds, which checks
                    # shapes in Python; the C++ callable feeds by name like TF Serving's Session::Run.
                    self._callables[key] = self._session._make_callable_from_options(options)
                except Exception as exc:
                    raise from_exception(exc) from exc
            return self._callables[key]

    def close(self) -> None:
        """Release the Session (the bundle's memory) once no request uses it."""
        with self._lock:
            self._callables.clear()
        self._session.close()


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


def _open_session(path: str, tags: list[str]) -> Any:
    """LoadSavedModel: import the tagged MetaGraph into a new Graph and Session, restore, run the init op."""
    import tensorflow as tf
    from tensorflow.python.saved_model import loader_impl

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():
            # Imports the graph, restores the variables, binds asset files and runs main_op/legacy_init_op.
            loader_impl.SavedModelLoader(path).load(session, tags)
    except Exception as exc:
        session.close()
        raise from_exception(exc) from exc
    graph.finalize()  # a served graph never grows (requests only feed and fetch)
    return session


def load_servable(name: str, version: int, path: str, tags: list[str]) -> Servable:
    """Load one version from its directory; raises ServingError with the stock code and message."""
    log.info("Reading SavedModel from: %s", path)
    meta_graph = _meta_graph(_read_saved_model(path), tags)
    session = _open_session(path, tags)
    log.info("SavedModel load for tags { %s }; Status: success: OK.", " ".join(tags))
    return Servable(name, version, path, meta_graph, session)
