"""The signature gate's pure rule: inputs may widen, outputs may narrow; anything else names what broke."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from agent.adapters.tfserving.base import Signature, TensorSpec
from agent.core.signatures import Shape, breaking_changes, shape_problem

F32 = np.dtype(np.float32)


def spec(shape: Shape = (None,), dtype: np.dtype = F32) -> TensorSpec:  # type: ignore[type-arg]
    return TensorSpec(dtype, shape)


def sig(
    inputs: dict[str, TensorSpec] | None = None, outputs: dict[str, TensorSpec] | None = None
) -> Signature:
    return Signature(
        inputs if inputs is not None else {"x": spec()}, outputs if outputs is not None else {"y": spec()}
    )


SERVING = {"serving_default": sig()}


def test_identical_signatures_break_nothing() -> None:
    """The same SignatureDefs give no difference."""
    assert breaking_changes(SERVING, {"serving_default": sig()}) == []


def test_renamed_input_names_both_sides() -> None:
    """A renamed input is the old name removed (listing the new names) and the new one added."""
    assert breaking_changes(SERVING, {"serving_default": sig({"features": spec()})}) == [
        "signature serving_default: input 'x' removed (inputs now: 'features')",
        "signature serving_default: input 'features' added (clients do not send it) (inputs now: 'features')",
    ]


def test_removed_signature_and_output_are_named() -> None:
    """A removed signature or output is a break that names it and what is left."""
    serving = {"serving_default": sig(outputs={"y": spec(), "z": spec()}), "classify": sig()}
    assert breaking_changes(serving, {"serving_default": sig()}) == [
        "signature 'classify' removed (signatures now: 'serving_default')",
        "signature serving_default: output 'z' removed (outputs now: 'y')",
    ]


def test_added_output_and_signature_pass() -> None:
    """Clients never see what they do not ask for: added outputs and signatures break nothing."""
    candidate = {"serving_default": sig(outputs={"y": spec(), "extra": spec()}), "other": sig()}
    assert breaking_changes(SERVING, candidate) == []


def test_dtype_change_is_named() -> None:
    """A dtype change of an input or output is a break naming both dtypes (string for DT_STRING)."""
    candidate = {
        "serving_default": sig({"x": spec(dtype=np.dtype(object))}, {"y": spec(dtype=np.dtype(np.int64))})
    }
    assert breaking_changes(SERVING, candidate) == [
        "signature serving_default: input 'x' dtype float32 -> string",
        "signature serving_default: output 'y' dtype float32 -> int64",
    ]


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ((3,), (None,), None),  # accepts what clients send today, and more
        ((None,), (3,), "dimension 0 -1 -> 3"),
        ((None, 3), (None, 4), "dimension 1 3 -> 4"),
        ((None,), (None, 1), "rank 1 -> 2"),
        ((None,), None, None),
        (None, (None,), "any rank was accepted, now only one"),
    ],
)
def test_input_shapes_may_only_widen(old: Shape, new: Shape, problem: str | None) -> None:
    """An input may go from fixed to -1 (or unknown rank), never the reverse; rank and fixed sizes hold."""
    assert shape_problem(old, new, widen=True) == problem


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ((None,), (3,), None),  # clients already handle any size
        ((3,), (None,), "dimension 0 3 -> -1"),
        ((None, 2), (None, 1), "dimension 1 2 -> 1"),
        ((None,), (), "rank 1 -> 0"),
        (None, (4,), None),
        ((4,), None, "the rank is no longer known"),
    ],
)
def test_output_shapes_may_only_narrow(old: Shape, new: Shape, problem: str | None) -> None:
    """An output may go from -1 to fixed, never the reverse; rank and fixed sizes hold."""
    assert shape_problem(old, new, widen=False) == problem


def test_shape_break_shows_both_shapes() -> None:
    """The reason shows the shapes as TensorShapeProto writes them."""
    candidate = {"serving_default": sig({"x": spec((None, 3))})}
    assert breaking_changes(SERVING, candidate) == [
        "signature serving_default: input 'x' shape [-1] -> [-1,3]: rank 1 -> 2"
    ]


@dataclass(frozen=True)
class _Plain:
    """Any object with dtype and shape will do: the core depends on no adapter type."""

    dtype: str
    shape: Shape


@dataclass(frozen=True)
class _PlainSig:
    inputs: dict[str, _Plain]
    outputs: dict[str, _Plain]


def test_core_takes_any_signature_shape() -> None:
    """The comparison reads only dtype names and shapes."""
    old = {"s": _PlainSig({"a": _Plain("int32", (2,))}, {})}
    new = {"s": _PlainSig({"a": _Plain("int64", (2,))}, {})}
    assert breaking_changes(old, new) == ["signature s: input 'a' dtype int32 -> int64"]
