"""SavedModels of the kinds people serve on TF Serving, built with TensorFlow at test time (B23, B24).

Why these four: they are the shapes where a stand-in that re-traces graphs or checks shapes would differ from
TF Serving's ``SavedModelBundle`` (a Session over the ``serve`` MetaGraph):
- ``build_estimator_style``: TF Serving's own ``saved_model_half_plus_two.py`` shape — a ``tf.compat.v1``
  graph that parses serialized ``tf.Example`` with ``ParseExample``; ``y = a*x + b``; signatures
  ``serving_default`` (predict; input ``x`` is the *parsed* tensor [-1, 1], fed by name past the parser),
  ``regress_x_to_y`` (``inputs`` → ``outputs``), ``classify_x_to_y`` (``inputs`` → ``classes``/``scores``);
  an asset file ``foo.txt`` and a legacy init op.
- ``build_asset_table``: a TF1 graph whose lookup table is initialized from an asset file by the main op;
  ``words`` (string [-1]) → ``ids`` (int64). The vocabulary the graph was built from is deleted afterwards, so
  the table can only come from the SavedModel's own ``assets/`` copy.
- ``build_tf2_module``: ``tf.saved_model.save`` of a ``tf.Module``; ``x`` float32 [-1, 1] → ``y = a*x + b``.
- ``build_keras``: ``keras.Model.export`` of ``Dense(1)`` with kernel ``a`` and bias ``b``; ``x`` [-1, 1] →
  ``output_0``. Its MatMul needs a matrix, so ``[1]`` is refused by the graph itself.
Each writes ``<base_path>/<version>`` atomically (testkit.savedmodels' install, cached per parameters).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from testkit.savedmodels import _install

CLASSES = ("lo", "hi")
VOCABULARY = ("apple", "banana", "cherry")


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _save_v1(path: Path, graph: Any, session: Any, signatures: dict[str, Any], **kwargs: Any) -> None:
    v1 = _tf().compat.v1
    builder = v1.saved_model.Builder(str(path))
    builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures, **kwargs)
    builder.save()


def _estimator_graph(v1: Any, tf: Any, a: float, b: float) -> dict[str, Any]:
    serialized = v1.placeholder(tf.string, [None], name="tf_example")
    features = {
        "x": v1.io.FixedLenFeature([1], tf.float32),
        "x2": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
    }
    parsed = v1.io.parse_example(serialized, features)
    x = tf.identity(parsed["x"], name="x")
    y = tf.add(v1.Variable(a, name="a") * x, v1.Variable(b, name="b"), name="y")
    classes = tf.tile(tf.constant([list(CLASSES)]), [tf.shape(y)[0], 1], name="classes")
    scores = tf.concat([y, 2.0 * y], axis=1, name="scores")
    sig = v1.saved_model.signature_def_utils
    return {
        "serving_default": sig.predict_signature_def({"x": x}, {"y": y}),
        "regress_x_to_y": sig.regression_signature_def(serialized, y),
        "classify_x_to_y": sig.classification_signature_def(serialized, classes, scores),
    }


def build_estimator_style(base_path: Path, version: int, *, a: float = 0.5, b: float = 2.0) -> Path:
    """Write the half_plus_two Estimator-style export (tf.Example parsing, three signatures, an asset)."""

    def build(path: Path) -> None:
        tf = _tf()
        v1 = tf.compat.v1
        with tempfile.TemporaryDirectory() as scratch:
            asset = Path(scratch) / "foo.txt"
            asset.write_text("asset-file-contents")
            graph = tf.Graph()
            with graph.as_default(), v1.Session(graph=graph) as session:
                signatures = _estimator_graph(v1, tf, a, b)
                asset_path = tf.constant(str(asset), name="filename_tensor")
                v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, asset_path)
                session.run(v1.global_variables_initializer())
                init = tf.group(v1.tables_initializer(), name="legacy_init_op")
                _save_v1(
                    path,
                    graph,
                    session,
                    signatures,
                    assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
                    legacy_init_op=init,
                )

    return _install(("estimator_style", a, b), build, base_path, version)


def build_asset_table(base_path: Path, version: int) -> Path:
    """Write a TF1 model whose main op fills a lookup table from an asset vocabulary; ``words`` → ``ids``."""

    def build(path: Path) -> None:
        tf = _tf()
        v1 = tf.compat.v1
        with tempfile.TemporaryDirectory() as scratch:
            vocabulary = Path(scratch) / "vocab.txt"
            vocabulary.write_text("\n".join(VOCABULARY) + "\n")
            graph = tf.Graph()
            with graph.as_default(), v1.Session(graph=graph) as session:
                asset_path = tf.constant(str(vocabulary), name="vocab_path")
                v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, asset_path)
                table = tf.lookup.StaticHashTable(
                    tf.lookup.TextFileInitializer(
                        asset_path,
                        tf.string,
                        tf.lookup.TextFileIndex.WHOLE_LINE,
                        tf.int64,
                        tf.lookup.TextFileIndex.LINE_NUMBER,
                    ),
                    default_value=-1,
                )
                words = v1.placeholder(tf.string, [None], name="words")
                ids = tf.identity(table.lookup(words), name="ids")
                signature = v1.saved_model.signature_def_utils.predict_signature_def(
                    {"words": words}, {"ids": ids}
                )
                _save_v1(
                    path,
                    graph,
                    session,
                    {"serving_default": signature},
                    assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
                    main_op=v1.tables_initializer(),
                )
        # The scratch vocabulary is gone now: only <version>/assets/vocab.txt can fill the table.

    return _install(("asset_table",), build, base_path, version)


def build_tf2_module(base_path: Path, version: int, *, a: float = 0.5, b: float = 2.0) -> Path:
    """Write a ``tf.saved_model.save`` export: ``x`` float32 [-1, 1] → ``y = a*x + b``."""

    def build(path: Path) -> None:
        tf = _tf()

        class HalfPlusTwo(tf.Module):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.a = tf.Variable(a, dtype=tf.float32)
                self.b = tf.Variable(b, dtype=tf.float32)

            @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])  # type: ignore[untyped-decorator]
            def serve(self, x: Any) -> dict[str, Any]:
                return {"y": self.a * x + self.b}

        module = HalfPlusTwo()
        tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})

    return _install(("tf2_module", a, b), build, base_path, version)


def build_keras(base_path: Path, version: int, *, a: float = 0.5, b: float = 2.0) -> Path:
    """Write a ``keras.Model.export`` of ``Dense(1)`` (kernel ``a``, bias ``b``): ``x`` → ``output_0``."""

    def build(path: Path) -> None:
        import keras
        import numpy as np

        inputs = keras.Input(shape=(1,), name="x")
        dense = keras.layers.Dense(1, name="y")
        model = keras.Model(inputs, dense(inputs))
        dense.set_weights([np.array([[a]], dtype=np.float32), np.array([b], dtype=np.float32)])
        model.export(str(path), verbose=False)

    return _install(("keras", a, b), build, base_path, version)
