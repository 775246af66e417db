"""Real SavedModels that misbehave in ways the agent must catch after validation (TensorFlow is imported).

``build_degrading``: answers y = a·x + b for its first ``good_calls`` calls *per loaded instance*, then
y = a·x + b + 100 — a model that passes a shadow check and then goes wrong under live traffic, which only the
bake watch can see. ``build_wrong_once``: y = a·x + b until a file the test creates exists, then wrong answers
— a version that goes bad at a moment the test chooses (while the agent is down, say).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build_degrading(
    base_path: Path, version: int, *, good_calls: int, a: float = 0.5, b: float = 2.0
) -> Path:
    import tensorflow as tf

    class Degrading(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.calls = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])  # type: ignore[misc]
        def serve(self, x: Any) -> dict[str, Any]:
            calls = self.calls.assign_add(1)
            drift = tf.where(calls > good_calls, 100.0, 0.0)
            return {"y": a * x + b + drift}

    module = Degrading()
    out = base_path / str(version)
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    return out


def build_fails_on(base_path: Path, version: int, *, bad: float, a: float = 0.5, b: float = 2.0) -> Path:
    """y = a·x + b, but an InvalidArgument error for any batch holding ``bad``: passes golden data that
    lacks ``bad`` and fails live traffic that sends it (the fleet's canary case)."""
    import tensorflow as tf

    class FailsOn(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])  # type: ignore[misc]
        def serve(self, x: Any) -> dict[str, Any]:
            check = tf.debugging.assert_none_equal(x, tf.constant(bad), message="input the model cannot take")
            with tf.control_dependencies([check]):
                return {"y": a * x + b}

    module = FailsOn()
    out = base_path / str(version)
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    return out


def build_wrong_once(base_path: Path, version: int, *, trigger: Path, a: float = 0.5, b: float = 2.0) -> Path:
    """y = a·x + b while ``trigger`` does not exist, y = a·x + b + 100 once it does (looked at every call)."""
    import tensorflow as tf

    class WrongOnce(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.trigger = tf.Variable(str(trigger))  # a constant path would be folded: looked at once

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])  # type: ignore[misc]
        def serve(self, x: Any) -> dict[str, Any]:
            wrong = tf.size(tf.io.matching_files(self.trigger)) > 0
            return {"y": a * x + b + tf.where(wrong, 100.0, 0.0)}

    module = WrongOnce()
    out = base_path / str(version)
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    return out
