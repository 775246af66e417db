"""The golden file: requests a candidate must answer before it may serve (docs/architecture.md#golden-file).

JSON in TF Serving's REST shapes so users can paste a real request: ``instances`` (rows) or ``inputs``
(columns), optional ``expected`` outputs with a ``tolerance``, optional ``labels`` with metric gates.
Parsing is strict — an unknown key or a batch-size mismatch is a GoldenFileError naming the field and the
fix — because a golden file that silently checks less than its author meant is worse than none.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.core.errors import GoldenFileError

Array = npt.NDArray[Any]

METRICS = ("accuracy", "mae", "rmse")
"""Metrics computed against ``labels``; accuracy is better when higher, the others when lower."""
HIGHER_IS_BETTER = frozenset({"accuracy"})

_KEYS = {"signature_name", "instances", "inputs", "expected", "tolerance", "labels", "output", "metrics"}


@dataclass(frozen=True)
class Tolerance:
    """``|output - expected| <= atol + rtol * |expected|`` elementwise (numpy.isclose)."""

    atol: float = 1e-6
    rtol: float = 1e-5
    """Defaults suit float32 outputs of the same model on the same build; loosen them for retrained models."""


@dataclass(frozen=True)
class Gate:
    """Bounds a metric must respect (either may be absent)."""

    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, eq=False)
class Golden:
    """A parsed golden file. Arrays are read-only; ``expected`` is one array (for the selected output) or
    arrays by output name."""

    request: Mapping[str, Any]
    """``{"instances": [...]}`` or ``{"inputs": ...}`` exactly as in the file (tensors need the signature)."""
    batch_size: int
    signature_name: str = "serving_default"
    expected: Array | Mapping[str, Array] | None = None
    tolerance: Tolerance = Tolerance()
    labels: Array | None = None
    output: str | None = None
    metrics: Mapping[str, Gate] = field(default_factory=lambda: MappingProxyType({}))
    origin: str = "golden file"


def load_golden(path: Path) -> Golden:
    """Read and parse a local golden file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise GoldenFileError(f"cannot read golden file {path}: {err.strerror}") from err
    return parse_golden(data, str(path))


def parse_golden(data: bytes | str, origin: str = "golden file") -> Golden:
    """Parse golden JSON; raise GoldenFileError naming the offending field and how to fix it."""
    try:
        raw = json.loads(data)
    except ValueError as err:
        raise GoldenFileError(f"{origin}: not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise GoldenFileError(f'{origin}: the top level must be an object with "instances" or "inputs"')
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise GoldenFileError(f"{origin}: unknown key(s) {unknown}; the keys are {sorted(_KEYS)}")
    request, batch = _request(raw, origin)
    return Golden(
        request=MappingProxyType(request),
        batch_size=batch,
        signature_name=_string(raw, "signature_name", origin) or "serving_default",
        expected=_expected(raw.get("expected"), batch, origin),
        tolerance=_tolerance(raw.get("tolerance", {}), origin),
        labels=_labels(raw.get("labels"), batch, origin),
        output=_string(raw, "output", origin),
        metrics=_metrics(raw.get("metrics", {}), "labels" in raw, origin),
        origin=origin,
    )


def _request(raw: Mapping[str, Any], origin: str) -> tuple[dict[str, Any], int]:
    if ("instances" in raw) == ("inputs" in raw):
        raise GoldenFileError(f'{origin}: give exactly one of "instances" (rows) or "inputs" (columns)')
    if "instances" in raw:
        rows = raw["instances"]
        if not isinstance(rows, list) or not rows:
            raise GoldenFileError(f'{origin}: "instances" must be a non-empty list, one entry per example')
        return {"instances": rows}, len(rows)
    inputs = raw["inputs"]
    columns = list(inputs.values()) if isinstance(inputs, dict) else [inputs]
    sizes = {len(c) if isinstance(c, list) else -1 for c in columns}
    if not columns or -1 in sizes or 0 in sizes or len(sizes) != 1:
        raise GoldenFileError(
            f'{origin}: every "inputs" tensor must be a non-empty list with the same batch size (first '
            f"dimension); got sizes {sorted(sizes)}"
        )
    return {"inputs": inputs}, sizes.pop()


def _string(raw: Mapping[str, Any], key: str, origin: str) -> str | None:
    value = raw.get(key)
    if value is not None and not (isinstance(value, str) and value):
        raise GoldenFileError(f'{origin}: "{key}" must be a non-empty string')
    return value


def _array(value: Any, what: str, batch: int, origin: str) -> Array:
    try:
        array = np.asarray(value)
    except ValueError as err:
        raise GoldenFileError(f"{origin}: {what} is ragged; every example needs the same shape") from err
    if array.dtype.kind not in "biufU" or array.ndim == 0 or len(array) != batch:
        raise GoldenFileError(
            f"{origin}: {what} must be a list of {batch} numbers, booleans or strings (one per example), "
            f"got shape {array.shape} of {array.dtype}"
        )
    array.flags.writeable = False
    return array


def _expected(value: Any, batch: int, origin: str) -> Array | Mapping[str, Array] | None:
    if value is None:
        return None
    if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
        keys = set(value[0])
        if any(set(row) != keys for row in value):
            raise GoldenFileError(f'{origin}: every row of "expected" must name the same outputs')
        value = {key: [row[key] for row in value] for key in sorted(keys)}
    if isinstance(value, dict):
        if not value:
            raise GoldenFileError(f'{origin}: "expected" names no output')
        return MappingProxyType(
            {name: _array(v, f'"expected.{name}"', batch, origin) for name, v in sorted(value.items())}
        )
    return _array(value, '"expected"', batch, origin)


def _labels(value: Any, batch: int, origin: str) -> Array | None:
    if value is None:
        return None
    labels = _array(value, '"labels"', batch, origin)
    if labels.dtype.kind == "U":
        raise GoldenFileError(
            f'{origin}: "labels" must be numbers or booleans (class ids, one-hot, or targets)'
        )
    return labels


def _number(value: Any, where: str, origin: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GoldenFileError(f"{origin}: {where} must be a finite number, got {value!r}")
    return float(value)


def _tolerance(value: Any, origin: str) -> Tolerance:
    if not isinstance(value, dict) or set(value) - {"atol", "rtol"}:
        raise GoldenFileError(f'{origin}: "tolerance" takes only "atol" and "rtol", e.g. {{"atol": 1e-4}}')
    bounds = {k: _number(v, f'"tolerance.{k}"', origin) for k, v in value.items()}
    if any(v < 0 for v in bounds.values()):
        raise GoldenFileError(f'{origin}: "tolerance" values must not be negative')
    return Tolerance(**bounds)


def _metrics(value: Any, has_labels: bool, origin: str) -> Mapping[str, Gate]:
    if not isinstance(value, dict):
        raise GoldenFileError(
            f'{origin}: "metrics" must map a metric to bounds, e.g. {{"mae": {{"max": 0.2}}}}'
        )
    if value and not has_labels:
        raise GoldenFileError(f'{origin}: "metrics" are computed against "labels"; add one label per example')
    gates = {}
    for name, bounds in sorted(value.items()):
        if name not in METRICS:
            raise GoldenFileError(f'{origin}: unknown metric "{name}"; known: {", ".join(METRICS)}')
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
            raise GoldenFileError(f'{origin}: "metrics.{name}" needs "min" and/or "max", e.g. {{"min": 0.9}}')
        gates[name] = Gate(**{k: _number(v, f'"metrics.{name}.{k}"', origin) for k, v in bounds.items()})
    return MappingProxyType(gates)
