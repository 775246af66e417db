"""Build the demo's SavedModels. Imports TensorFlow, so the demo runs it as a subprocess (the agent never
imports TensorFlow itself): ``python -m agent.service.demo.models OUT_DIR A B [OUT_DIR A B ...]``."""

from __future__ import annotations

import sys
from pathlib import Path


def build(out: Path, a: float, b: float, bad: float | None = None) -> None:
    """y = a·x + b on a float32 vector ``x`` (like TF Serving's half_plus_two example); with ``bad``, a
    batch holding that value is refused (InvalidArgument): it passes golden data lacking it, fails traffic."""
    import tensorflow as tf

    class Affine(tf.Module):  # type: ignore[misc]  # tf.Module is untyped
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(a, dtype=tf.float32)
            self.b = tf.Variable(b, dtype=tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])  # type: ignore[untyped-decorator]
        def serve(self, x: object) -> dict[str, object]:
            if bad is None:
                return {"y": self.a * x + self.b}
            check = tf.debugging.assert_none_equal(x, tf.constant(bad), message="input this model refuses")
            with tf.control_dependencies([check]):
                return {"y": self.a * x + self.b}

    module = Affine()
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})


def main(argv: list[str]) -> int:
    """Arguments in threes: OUT_DIR A B (B as ``b@bad`` refuses inputs equal to bad), so one TensorFlow
    import builds every model."""
    for i in range(0, len(argv), 3):
        b, _, bad = argv[i + 2].partition("@")
        build(Path(argv[i]), float(argv[i + 1]), float(b), float(bad) if bad else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
