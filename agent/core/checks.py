"""Pure validation checks: small functions of one shape, ``(outputs, golden) -> CheckResult``, run in a row.

No I/O here (import-linter enforces it): run.py gets the outputs from TF Serving and this module only judges
them — outputs within tolerance of ``expected``, metrics against ``labels`` inside their gates, and no worse
than the serving version (the champion) by more than ``champion_tolerance``. The planner's "replace only when
the serving version underperforms" predicate lives here too, so both use the same metric directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.core.domain import CheckResult
from agent.core.golden import HIGHER_IS_BETTER, Gate, Golden

Array = npt.NDArray[Any]
Outputs = Mapping[str, Array]
Check = Callable[[Outputs, Golden], CheckResult]


class NotApplicableError(ValueError):
    """A metric or comparison that cannot be computed for these outputs (the message says why)."""


def select_output(outputs: Outputs, golden: Golden) -> Array:
    """The output a bare ``expected`` array and ``labels`` refer to: ``golden.output``, or the only one."""
    if golden.output is not None:
        if golden.output not in outputs:
            raise NotApplicableError(
                f"output {golden.output!r} not returned (outputs: {', '.join(sorted(outputs))})"
            )
        return outputs[golden.output]
    if len(outputs) != 1:
        raise NotApplicableError(
            f'the model has outputs {sorted(outputs)}; name one with "output" in the golden file'
        )
    return next(iter(outputs.values()))


# ---- outputs against expected ------------------------------------------------------------------------------


def outputs_match(outputs: Outputs, golden: Golden) -> CheckResult:
    """Every expected output is returned, with the expected shape, within atol/rtol."""
    try:
        pairs = _expected_pairs(outputs, golden)
        problems = [p for name, got, want in pairs if (p := _compare(name, got, want, golden))]
    except NotApplicableError as err:
        return CheckResult("expected", False, str(err))
    if problems:
        return CheckResult("expected", False, "; ".join(problems))
    tol = golden.tolerance
    return CheckResult(
        "expected", True, f"{golden.batch_size} example(s) within atol={tol.atol:g} rtol={tol.rtol:g}"
    )


def _expected_pairs(outputs: Outputs, golden: Golden) -> list[tuple[str, Array, Array]]:
    expected = golden.expected
    if expected is None:
        return []
    if isinstance(expected, np.ndarray):
        return [(golden.output or "output", select_output(outputs, golden), expected)]
    missing = sorted(set(expected) - set(outputs))
    if missing:
        raise NotApplicableError(f"outputs {missing} not returned (outputs: {', '.join(sorted(outputs))})")
    return [(name, outputs[name], want) for name, want in expected.items()]


def _compare(name: str, got: Array, want: Array, golden: Golden) -> str | None:
    if got.shape != want.shape:
        if np.squeeze(got).shape != np.squeeze(want).shape:
            return f"{name}: shape {got.shape}, expected {want.shape}"
        got, want = np.squeeze(got), np.squeeze(want)
    if want.dtype.kind == "U" or got.dtype == object:
        text = np.vectorize(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
        bad = text(got) != want.astype(str)
    else:
        tol = golden.tolerance
        bad = ~np.isclose(got.astype(np.float64), want.astype(np.float64), atol=tol.atol, rtol=tol.rtol)
    if not bad.any():
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return (
        f"{name}: {int(bad.sum())} of {bad.size} value(s) differ; first at {first}: "
        f"got {_show(got[first])}, expected {_show(want[first])}"
    )


def _show(value: Any) -> str:
    plain = value.item() if isinstance(value, np.generic) else value
    return f"{plain:.7g}" if isinstance(plain, float) else repr(plain)


# ---- metrics against labels --------------------------------------------------------------------------------


def _classes(values: Array) -> Array:
    """Class ids: argmax of scores or one-hot rows, 0.5 threshold of one probability, ints as they are."""
    squeezed = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(-1, 1)
    if squeezed.shape[1] > 1:
        return np.asarray(squeezed.argmax(axis=1))
    flat = squeezed[:, 0]
    if flat.dtype.kind in "biu":
        return flat.astype(np.int64)
    return (flat >= 0.5).astype(np.int64)


def accuracy(predictions: Array, labels: Array) -> float:
    """Share of examples whose predicted class equals the label's class."""
    if len(predictions) != len(labels):
        raise NotApplicableError(f"{len(predictions)} predictions for {len(labels)} labels")
    return float(np.mean(_classes(predictions) == _classes(labels)))


def _errors(predictions: Array, labels: Array) -> Array:
    if predictions.dtype == object or predictions.size != labels.size:
        raise NotApplicableError(
            f"predictions of shape {predictions.shape} do not line up with labels {labels.shape}"
        )
    return predictions.astype(np.float64).reshape(-1) - labels.astype(np.float64).reshape(-1)


def mae(predictions: Array, labels: Array) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(_errors(predictions, labels))))


def rmse(predictions: Array, labels: Array) -> float:
    """Root mean squared error."""
    return float(math.sqrt(np.mean(np.square(_errors(predictions, labels)))))


METRIC_FUNCTIONS: Mapping[str, Callable[[Array, Array], float]] = {
    "accuracy": accuracy,
    "mae": mae,
    "rmse": rmse,
}


def metric(name: str, outputs: Outputs, golden: Golden) -> float:
    """One metric of the selected output against the labels (NotApplicableError says why it cannot be)."""
    if golden.labels is None:
        raise NotApplicableError("the golden file has no labels")
    return METRIC_FUNCTIONS[name](select_output(outputs, golden), golden.labels)


def _reported(golden: Golden) -> list[str]:
    """Gated metrics, plus the ones that make sense for the labels (accuracy only for class-like labels)."""
    if golden.labels is None:
        return []
    names = set(golden.metrics) | {"mae", "rmse"}
    if golden.labels.dtype.kind in "biu":
        names.add("accuracy")
    return sorted(names)


def compute_metrics(outputs: Outputs, golden: Golden) -> dict[str, float]:
    """Every metric that can be computed for these outputs (for the verdict, /status and Prometheus)."""
    values = {}
    for name in _reported(golden):
        try:
            values[name] = metric(name, outputs, golden)
        except NotApplicableError:
            continue
    return values


def metric_gate(name: str, gate: Gate) -> Check:
    """A check that metric ``name`` lies within ``gate``."""

    def check(outputs: Outputs, golden: Golden) -> CheckResult:
        label = f"{name} gate"
        try:
            value = metric(name, outputs, golden)
        except NotApplicableError as err:
            return CheckResult(label, False, f"cannot compute {name}: {err}")
        if gate.min is not None and value < gate.min:
            return CheckResult(label, False, f"{name}={value:.6g} below min {gate.min:g}")
        if gate.max is not None and value > gate.max:
            return CheckResult(label, False, f"{name}={value:.6g} above max {gate.max:g}")
        return CheckResult(label, True, f"{name}={value:.6g}")

    return check


# ---- champion and replacement ------------------------------------------------------------------------------


def worse_by(name: str, value: float, reference: float) -> float:
    """How much worse ``value`` is than ``reference`` for this metric (negative when better)."""
    return reference - value if name in HIGHER_IS_BETTER else value - reference


def champion_within(champion: Mapping[str, float], tolerance: float) -> Check:
    """A check that the candidate trails the serving version by at most ``tolerance`` on each compared metric
    (the gated metrics, or every metric both have when none is gated)."""

    def check(outputs: Outputs, golden: Golden) -> CheckResult:
        mine = compute_metrics(outputs, golden)
        names = sorted((set(golden.metrics) or set(mine)) & set(champion))
        if not names:
            return CheckResult("champion", True, "no metric of the serving version to compare with")
        behind = [
            f"{n}={mine[n]:.6g} vs serving {champion[n]:.6g}"
            for n in names
            if n not in mine or worse_by(n, mine[n], champion[n]) > tolerance
        ]
        if behind:
            return CheckResult("champion", False, f"worse than serving by more than {tolerance:g}: {behind}")
        return CheckResult(
            "champion", True, ", ".join(f"{n} {mine[n]:.6g} vs {champion[n]:.6g}" for n in names)
        )

    return check


def checks_for(
    golden: Golden, *, champion: Mapping[str, float] | None = None, champion_tolerance: float | None = None
) -> tuple[Check, ...]:
    """The pipeline a golden file asks for, in the order results are reported."""
    pipeline: list[Check] = []
    if golden.expected is not None:
        pipeline.append(outputs_match)
    pipeline.extend(metric_gate(name, gate) for name, gate in golden.metrics.items())
    if champion is not None and champion_tolerance is not None:
        pipeline.append(champion_within(champion, champion_tolerance))
    return tuple(pipeline)


def run_checks(outputs: Outputs, golden: Golden, checks: Iterable[Check]) -> tuple[CheckResult, ...]:
    """Apply every check (no short-circuit: the verdict lists all failures at once)."""
    return tuple(check(outputs, golden) for check in checks)
