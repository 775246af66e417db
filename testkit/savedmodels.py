"""Tiny real SavedModels for tests and benchmarks, built with TensorFlow at test time.

Why real models: the devserver (and the stock server, when TFS_BINARY is set) must load exactly what users
ship. Every builder writes ``<base_path>/<version>`` atomically: it builds into a hidden sibling directory (a
non-integer name, so a polling server ignores it) and renames it into place, so a server never sees a
half-written version. Builds are cached per parameters within a process and copied (~ms each).

Models (all take float32 ``x`` of shape [None], one value per instance, so REST ``{"instances": [1.0, 2.0]}``
works):
- ``build_half_plus_two``: signature ``serving_default``, output ``y = a*x + b``. TF2 (``tf.Module``) by
  default, TF1 signature-def form with ``tf1=True``. ``weight_mb`` adds an unused variable of that size that
  is loaded. ``input_name`` renames the input and ``extra_output`` adds ``y_doubled`` (signature-gate tests).
- ``build_gated_model``: inputs ``x`` and ``gate`` (a path, string scalar); the call first creates the file
  ``<gate>.started``, then spins until the file at ``gate`` exists (an empty ``gate`` returns at once), then
  returns ``y = x + b``. Lets a test hold a request or a warmup in flight deterministically, with no sleeps:
  wait for ``.started``, assert, then create ``gate``.
- ``build_example_model``: TF1, takes serialized ``tf.Example`` with float feature ``x`` (one value);
  signatures ``regress`` and ``serving_default`` (regression, ``outputs = a*x + b``) and ``classify`` (classes
  ``["lo", "hi"]``, scores ``[a*x + b, 2*(a*x + b)]``).
Helpers: ``corrupt_savedmodel``, ``write_warmup``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_CACHE_DIR = Path(tempfile.mkdtemp(prefix="savedmodel-cache-"))
atexit.register(shutil.rmtree, _CACHE_DIR, True)
_CACHE: dict[tuple[Any, ...], Path] = {}


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _install(key: tuple[Any, ...], build: Callable[[Path], None], base_path: Path, version: int) -> Path:
    """Build once per key into the cache, then copy to ``base_path/version`` via an atomic rename."""
    if key not in _CACHE:
        target = _CACHE_DIR / uuid.uuid4().hex
        build(target)
        _CACHE[key] = target
    base_path = Path(base_path)
    base_path.mkdir(parents=True, exist_ok=True)
    staging = base_path / f".staging-{version}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(_CACHE[key], staging)
    final = base_path / str(version)
    if final.exists():
        shutil.rmtree(final)
    os.rename(staging, final)
    return final


def _save_tf2_half_plus_two(
    path: Path, a: float, b: float, weight_mb: float, input_name: str = "x", extra_output: bool = False
) -> None:
    tf = _tf()

    class HalfPlusTwo(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(a, dtype=tf.float32)
            self.b = tf.Variable(b, dtype=tf.float32)
            if weight_mb > 0:
                self.ballast = tf.Variable(tf.zeros([int(weight_mb * 2**20 / 4)], tf.float32))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=input_name)])  # type: ignore[untyped-decorator]
        def serve(self, x: Any) -> dict[str, Any]:
            y = self.a * x + self.b
            return {"y": y, "y_doubled": 2.0 * y} if extra_output else {"y": y}

    module = HalfPlusTwo()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def _save_tf1(path: Path, build_graph: Callable[[Any], dict[str, Any]], weight_mb: float = 0) -> None:
    """Build a graph with tf.compat.v1 and save it with the v1 SavedModelBuilder."""
    tf = _tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        signatures = build_graph(v1)
        if weight_mb > 0:
            v1.Variable(tf.zeros([int(weight_mb * 2**20 / 4)], tf.float32), name="ballast")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
            builder.save()


def build_half_plus_two(
    base_path: Path,
    version: int,
    *,
    a: float = 0.5,
    b: float = 2.0,
    tf1: bool = False,
    weight_mb: float = 0,
    input_name: str = "x",
    extra_output: bool = False,
) -> Path:
    """Write ``base_path/version``: ``serving_default`` maps float32 ``x`` [None] to ``y = a*x + b``.

    Signature variants (TF2 only) for the signature gate: ``input_name`` renames the input, ``extra_output``
    adds an output ``y_doubled = 2*y``."""

    def build(path: Path) -> None:
        if not tf1:
            _save_tf2_half_plus_two(path, a, b, weight_mb, input_name, extra_output)
            return

        def graph(v1: Any) -> dict[str, Any]:
            x = v1.placeholder(_tf().float32, [None], name="x")
            y = v1.add(v1.Variable(a, name="a") * x, v1.Variable(b, name="b"), name="y")
            return {"serving_default": v1.saved_model.predict_signature_def({"x": x}, {"y": y})}

        _save_tf1(path, graph, weight_mb)

    key = ("half_plus_two", a, b, tf1, weight_mb, input_name, extra_output)
    return _install(key, build, base_path, version)


def build_gated_model(base_path: Path, version: int, *, b: float = 2.0) -> Path:
    """Write a TF2 model whose call waits until the file named by input ``gate`` exists; ``y = x + b``."""

    def build(path: Path) -> None:
        tf = _tf()

        class Gated(tf.Module):  # type: ignore[misc]
            @tf.function(  # type: ignore[untyped-decorator]
                input_signature=[
                    tf.TensorSpec([None], tf.float32, name="x"),
                    tf.TensorSpec([], tf.string, name="gate"),
                ]
            )
            def serve(self, x: Any, gate: Any) -> dict[str, Any]:
                gated = tf.strings.length(gate) > 0
                marker = tf.strings.join([gate, ".started"])
                started = tf.cond(gated, lambda: tf.io.write_file(marker, ""), tf.no_op)

                def closed(i: Any) -> Any:
                    return tf.logical_and(gated, tf.size(tf.io.matching_files(gate)) == 0)

                with tf.control_dependencies([started]):
                    spins = tf.while_loop(closed, lambda i: i + 1, [tf.constant(0, tf.int64)])
                return {"y": x + b + 0.0 * tf.cast(spins, tf.float32)}

        module = Gated()
        tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})

    return _install(("gated", b), build, base_path, version)


def build_example_model(base_path: Path, version: int, *, a: float = 0.5, b: float = 2.0) -> Path:
    """Write a TF1 model with Classify (``classify``) and Regress (``regress``, ``serving_default``)."""

    def build(path: Path) -> None:
        def graph(v1: Any) -> dict[str, Any]:
            tf = _tf()
            serialized = v1.placeholder(tf.string, [None], name="tf_example")
            x = v1.io.parse_example(serialized, {"x": v1.io.FixedLenFeature([1], tf.float32)})["x"]
            y = v1.add(v1.Variable(a, name="a") * x, v1.Variable(b, name="b"), name="y")
            scores = v1.concat([y, 2.0 * y], axis=1, name="scores")
            classes = v1.tile(v1.constant([["lo", "hi"]]), [v1.shape(y)[0], 1], name="classes")
            regress = v1.saved_model.regression_signature_def(serialized, y)
            classify = v1.saved_model.classification_signature_def(serialized, classes, scores)
            return {"serving_default": regress, "regress": regress, "classify": classify}

        _save_tf1(path, graph)

    return _install(("examples", a, b), build, base_path, version)


def corrupt_savedmodel(path: Path) -> Path:
    """Overwrite ``path/saved_model.pb`` with bytes that do not parse (stock: DATA_LOSS ``Can't parse``)."""
    pb = Path(path) / "saved_model.pb"
    pb.write_bytes(b"\x0a\xff\xff\xff\xff this is not a SavedModel")
    return pb


def write_warmup(version_dir: Path, requests: Iterable[Any]) -> Path:
    """Write ``assets.extra/tf_serving_warmup_requests`` with one PredictionLog per PredictRequest given."""
    from tensorflow_serving.apis import prediction_log_pb2

    tf = _tf()
    target = Path(version_dir) / "assets.extra" / "tf_serving_warmup_requests"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(target)) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.CopyFrom(request)
            writer.write(log.SerializeToString())
    return target
