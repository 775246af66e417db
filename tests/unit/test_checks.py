"""Pure validation checks: outputs against expected, metrics against labels, gates, champion, replacement."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from agent.core import checks
from agent.core.domain import CheckResult
from agent.core.golden import Gate, Golden, parse_golden


def golden(**fields: Any) -> Golden:
    return parse_golden(json.dumps({"instances": [0, 1, 2, 3], **fields}))


def out(values: Any, name: str = "y") -> dict[str, np.ndarray[Any, Any]]:
    return {name: np.asarray(values)}


def test_outputs_within_tolerance_pass() -> None:
    """Outputs within atol + rtol*|expected| pass; an (N, 1) output matches a flat expected list."""
    g = golden(expected=[2.0, 2.5, 3.0, 3.5], tolerance={"atol": 0.01, "rtol": 0})
    result = checks.outputs_match(out([[2.0], [2.505], [3.0], [3.5]]), g)
    assert result == CheckResult("expected", True, "4 example(s) within atol=0.01 rtol=0")


def test_mismatch_names_the_first_bad_value() -> None:
    """A mismatch reports how many values differ and the first one, with got and expected."""
    g = golden(expected=[2.0, 2.5, 3.0, 3.5])
    result = checks.outputs_match(out(np.array([2.0, 2.5, 9.0, 9.5], np.float32)), g)
    assert not result.ok
    assert result.detail.startswith("output: 2 of 4 value(s) differ; first at (2,): got")


def test_named_expected_outputs_must_all_be_returned() -> None:
    """Expected outputs by name: a missing one fails, naming what the model did return."""
    g = golden(expected={"y": [1, 1, 1, 1], "z": [0, 0, 0, 0]})
    result = checks.outputs_match(out([1, 1, 1, 1]), g)
    assert result == CheckResult("expected", False, "outputs ['z'] not returned (outputs: y)")


def test_shape_mismatch_fails() -> None:
    """Outputs whose shape differs beyond squeezable 1-dims fail with both shapes."""
    result = checks.outputs_match(out(np.zeros((4, 2))), golden(expected=[1, 2, 3, 4]))
    assert result == CheckResult("expected", False, "output: shape (4, 2), expected (4,)")


def test_several_outputs_need_output_named() -> None:
    """A bare expected list with a multi-output model asks the author to name the output."""
    result = checks.outputs_match({"a": np.zeros(4), "b": np.zeros(4)}, golden(expected=[0, 0, 0, 0]))
    assert not result.ok
    assert 'name one with "output"' in result.detail


def test_string_outputs_compare_exactly() -> None:
    """Text outputs (bytes from TF Serving) compare exactly against expected strings."""
    g = golden(expected=["a", "b", "c", "d"])
    assert checks.outputs_match(out(np.array([b"a", b"b", b"c", b"d"], dtype=object)), g).ok
    assert not checks.outputs_match(out(np.array([b"a", b"b", b"c", b"x"], dtype=object)), g).ok


@pytest.mark.parametrize(
    ("predictions", "labels", "expected"),
    [
        ([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], [1, 0, 0, 0], 0.75),  # multi-class: argmax
        ([[0, 1], [1, 0], [0, 1], [1, 0]], [[0, 1], [1, 0], [1, 0], [1, 0]], 0.75),  # one-hot labels
        ([0.9, 0.2, 0.51, 0.49], [1, 0, 1, 1], 0.75),  # binary probability: 0.5 threshold
        ([[0.9], [0.2], [0.51], [0.49]], [True, False, True, True], 0.75),
        ([3, 1, 2, 2], [3, 1, 2, 0], 0.75),  # integer class ids: exact
    ],
)
def test_accuracy(predictions: Any, labels: Any, expected: float) -> None:
    """Accuracy uses argmax for scores, a 0.5 threshold for one probability, exact match for ints."""
    assert checks.accuracy(np.asarray(predictions), np.asarray(labels)) == pytest.approx(expected)


def test_mae_and_rmse() -> None:
    """MAE and RMSE of the selected output against the labels; (N, 1) outputs line up with N labels."""
    g = golden(labels=[1.0, 2.0, 3.0, 4.0])
    outputs = out([[1.0], [2.0], [3.0], [6.0]])
    assert checks.metric("mae", outputs, g) == pytest.approx(0.5)
    assert checks.metric("rmse", outputs, g) == pytest.approx(1.0)
    assert checks.compute_metrics(outputs, g) == pytest.approx({"mae": 0.5, "rmse": 1.0})


def test_accuracy_reported_for_class_labels_only() -> None:
    """Integer labels add accuracy to the reported metrics; metrics that cannot be computed are left out."""
    g = golden(labels=[1, 0, 0, 0])
    got = checks.compute_metrics(out([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), g)
    assert got == {"accuracy": 0.75}


def test_gates() -> None:
    """min and max gates pass inside and fail outside, naming the value and the bound."""
    g = golden(labels=[1.0, 2.0, 3.0, 4.0])
    outputs = out([1.0, 2.0, 3.0, 6.0])
    assert checks.metric_gate("mae", Gate(max=0.6))(outputs, g) == CheckResult("mae gate", True, "mae=0.5")
    failed = checks.metric_gate("mae", Gate(max=0.2))(outputs, g)
    assert failed == CheckResult("mae gate", False, "mae=0.5 above max 0.2")
    low = checks.metric_gate("accuracy", Gate(min=0.9))(out([1, 2, 3, 0]), golden(labels=[1, 2, 3, 4]))
    assert low == CheckResult("accuracy gate", False, "accuracy=0.75 below min 0.9")


def test_gate_without_computable_metric_fails() -> None:
    """A gated metric that cannot be computed fails the gate rather than passing silently."""
    g = golden(labels=[1.0, 2.0, 3.0, 4.0])
    result = checks.metric_gate("mae", Gate(max=1))(out(np.zeros((4, 3))), g)
    assert not result.ok
    assert result.detail.startswith("cannot compute mae: predictions of shape (4, 3)")


def test_champion_tolerance() -> None:
    """A candidate may trail the serving version by at most champion_tolerance, in the metric's direction."""
    g = golden(labels=[1, 0, 0, 0], metrics={"accuracy": {"min": 0.5}})
    candidate = out([1, 0, 1, 1])  # accuracy 0.5
    assert checks.champion_within({"accuracy": 0.75}, 0.25)(candidate, g).ok
    behind = checks.champion_within({"accuracy": 0.75}, 0.1)(candidate, g)
    assert behind == CheckResult(
        "champion", False, "worse than serving by more than 0.1: ['accuracy=0.5 vs serving 0.75']"
    )
    lower_is_better = golden(labels=[0.0, 0.0, 0.0, 0.0], metrics={"mae": {"max": 1}})
    assert not checks.champion_within({"mae": 0.1}, 0.05)(out([0.2, 0.2, 0.2, 0.2]), lower_is_better).ok
    assert checks.champion_within({"mae": 0.3}, 0.0)(out([0.2, 0.2, 0.2, 0.2]), lower_is_better).ok


def test_champion_without_metrics_passes_with_a_note() -> None:
    """No champion metrics (it could not be scored) is reported, not treated as a failure."""
    result = checks.champion_within({}, 0.1)(out([1, 0, 0, 0]), golden(labels=[1, 0, 0, 0]))
    assert result == CheckResult("champion", True, "no metric of the serving version to compare with")


def test_pipeline_follows_the_golden_file() -> None:
    """The pipeline holds the checks the golden file asks for and reports every result, not only the first."""
    g = golden(
        expected=[0, 0, 0, 0],
        labels=[1.0, 1.0, 1.0, 1.0],
        metrics={"mae": {"max": 0.1}, "rmse": {"max": 0.1}},
    )
    pipeline = checks.checks_for(g, champion={"mae": 0.0}, champion_tolerance=0.0)
    results = checks.run_checks(out([1.0, 1.0, 1.0, 1.0]), g, pipeline)
    assert [(r.name, r.ok) for r in results] == [
        ("expected", False),
        ("mae gate", True),
        ("rmse gate", True),
        ("champion", True),
    ]
    assert checks.checks_for(golden()) == ()
