"""Does a candidate's SignatureDef map still take what the serving version's clients send, and still give what
they read? Pure: two maps of signatures in (from GetModelMetadata), a list of breaking differences out.

TF Serving itself "doesn't care if the model structure varies across versions" (tensorflow/serving #197): a
renamed input or a dtype change goes live and every client breaks. The rule (ADR 17) is the one of
function types: **inputs may widen, outputs may narrow**. An input dimension that was fixed may become -1
(any size: clients keep sending what they send), not the reverse; an output dimension that was -1 may become
fixed (clients already handle any size), not the reverse. A rank change, a changed fixed dimension, a dtype
change, a removed signature/input/output or an added input (clients do not send it, and Predict requires
every input, docs/tfserving-behaviour.md#b23) always break. Added signatures and outputs do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

Shape = tuple[int | None, ...] | None
"""A TensorShapeProto as the agent sees it: None for unknown rank, None for a -1 dimension."""


class TensorLike(Protocol):
    """One input or output: a dtype (anything with a readable ``str``) and a shape."""

    @property
    def dtype(self) -> object: ...

    @property
    def shape(self) -> Shape: ...


class SignatureLike(Protocol):
    """A SignatureDef: tensors by alias."""

    @property
    def inputs(self) -> Mapping[str, TensorLike]: ...

    @property
    def outputs(self) -> Mapping[str, TensorLike]: ...


def breaking_changes(
    serving: Mapping[str, SignatureLike], candidate: Mapping[str, SignatureLike]
) -> list[str]:
    """Every difference of ``candidate`` from ``serving`` that breaks a client, one line each naming the
    signature, the tensor and what changed; empty when clients of ``serving`` keep working."""
    problems: list[str] = []
    for name in sorted(serving):
        if name not in candidate:
            now = ", ".join(repr(n) for n in sorted(candidate)) or "none"
            problems.append(f"signature {name!r} removed (signatures now: {now})")
            continue
        old, new = serving[name], candidate[name]
        problems += [f"signature {name}: {p}" for p in _tensors("input", old.inputs, new.inputs)]
        problems += [f"signature {name}: {p}" for p in _tensors("output", old.outputs, new.outputs)]
    return problems


def _tensors(kind: str, old: Mapping[str, TensorLike], new: Mapping[str, TensorLike]) -> list[str]:
    now = f"({kind}s now: {', '.join(repr(n) for n in sorted(new)) or 'none'})"
    problems = [f"{kind} {alias!r} removed {now}" for alias in sorted(set(old) - set(new))]
    if kind == "input":
        problems += [
            f"input {alias!r} added (clients do not send it) {now}" for alias in sorted(set(new) - set(old))
        ]
    for alias in sorted(set(old) & set(new)):
        was, got = old[alias], new[alias]
        if dtype_name(was.dtype) != dtype_name(got.dtype):
            problems.append(f"{kind} {alias!r} dtype {dtype_name(was.dtype)} -> {dtype_name(got.dtype)}")
        problem = shape_problem(was.shape, got.shape, widen=kind == "input")
        if problem:
            problems.append(
                f"{kind} {alias!r} shape {show_shape(was.shape)} -> {show_shape(got.shape)}: {problem}"
            )
    return problems


def shape_problem(old: Shape, new: Shape, *, widen: bool) -> str | None:
    """Why ``new`` breaks clients of ``old``, or None. ``widen`` (inputs): ``new`` must accept everything
    ``old`` did; otherwise (outputs) ``new`` must produce only what ``old`` promised."""
    wide, narrow = (new, old) if widen else (old, new)
    if wide is None:
        return None
    if narrow is None:
        return "any rank was accepted, now only one" if widen else "the rank is no longer known"
    if len(old or ()) != len(new or ()):
        return f"rank {len(old or ())} -> {len(new or ())}"
    for index, (w, n) in enumerate(zip(wide, narrow, strict=True)):
        if w is not None and w != n:
            was, got = (n, w) if widen else (w, n)
            return f"dimension {index} {_dim(was)} -> {_dim(got)}"
    return None


def dtype_name(dtype: object) -> str:
    """numpy's name for a dtype, ``string`` for DT_STRING (numpy ``object``)."""
    name = str(dtype)
    return "string" if name == "object" else name


def show_shape(shape: Shape) -> str:
    """``[-1,3]`` as in a TensorShapeProto; ``unknown`` for an unknown rank."""
    return "unknown" if shape is None else "[" + ",".join(_dim(d) for d in shape) + "]"


def _dim(size: int | None) -> str:
    return "-1" if size is None else str(size)
