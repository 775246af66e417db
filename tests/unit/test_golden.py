"""The golden file: REST-shaped JSON parsed strictly, every error naming the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.adapters.tfserving.base import Signature, TensorSpec
from agent.adapters.tfserving.tensors import golden_inputs
from agent.core.errors import GoldenFileError
from agent.core.golden import Gate, Tolerance, load_golden, parse_golden

F32 = TensorSpec(np.dtype(np.float32), (None,))


def golden(**fields: Any) -> str:
    return json.dumps({"instances": [1.0, 2.0], **fields})


def test_full_file_parses(tmp_path: Path) -> None:
    """Every documented field lands in the Golden value, with arrays read-only."""
    path = tmp_path / "g.json"
    path.write_text(
        golden(
            signature_name="predict",
            expected=[2.5, 3.0],
            tolerance={"atol": 0.01},
            labels=[2.5, 3.0],
            output="y",
            metrics={"mae": {"max": 0.2}},
        )
    )
    g = load_golden(path)
    assert g.batch_size == 2
    assert g.signature_name == "predict"
    assert isinstance(g.expected, np.ndarray)
    assert g.expected.tolist() == [2.5, 3.0]
    assert not g.expected.flags.writeable
    assert g.tolerance == Tolerance(atol=0.01)
    assert g.labels is not None
    assert g.labels.tolist() == [2.5, 3.0]
    assert (g.output, dict(g.metrics)) == ("y", {"mae": Gate(max=0.2)})
    assert g.origin == str(path)


def test_columnar_inputs_and_named_expected() -> None:
    """ "inputs" columns give the batch size from their first dimension; rows of expected objects pivot."""
    g = parse_golden(
        json.dumps({"inputs": {"a": [[1], [2], [3]]}, "expected": [{"y": 1}, {"y": 2}, {"y": 3}]})
    )
    assert g.batch_size == 3
    assert g.expected is not None
    assert not isinstance(g.expected, np.ndarray)
    assert g.expected["y"].tolist() == [1, 2, 3]


def test_inputs_become_tensors_of_the_signature() -> None:
    """golden_inputs casts the JSON to the signature's dtypes and names a bare input after the only one."""
    g = parse_golden(golden())
    tensors = golden_inputs(g, Signature({"x": F32}, {"y": F32}))
    assert tensors["x"].dtype == np.float32
    assert tensors["x"].tolist() == [1.0, 2.0]


def test_inputs_that_do_not_fit_name_the_file() -> None:
    """A golden request that does not fit the model is a GoldenFileError naming the file and the input."""
    g = parse_golden(json.dumps({"inputs": {"z": [1]}}), "gs://b/golden.json")
    with pytest.raises(GoldenFileError, match=r"gs://b/golden.json: input 'z' is not in the signature"):
        golden_inputs(g, Signature({"x": F32}, {"y": F32}))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[1]", "top level must be an object"),
        (golden(expect=[1, 2]), r"unknown key\(s\) \['expect'\]"),
        (json.dumps({"expected": [1]}), 'exactly one of "instances"'),
        (json.dumps({"instances": [], "inputs": {}}), 'exactly one of "instances"'),
        (json.dumps({"instances": []}), "non-empty list"),
        (json.dumps({"inputs": {"a": [1, 2], "b": [1]}}), "same batch size"),
        (json.dumps({"inputs": {"a": 3}}), "same batch size"),
        (golden(expected=[1.0]), r'"expected" must be a list of 2'),
        (golden(expected=[[1], [2, 3]]), "ragged"),
        (golden(expected=[{"y": 1}, {"z": 2}]), "same outputs"),
        (golden(labels=["a", "b"]), '"labels" must be numbers'),
        (golden(tolerance={"atol": -1}), "must not be negative"),
        (golden(tolerance={"abs": 1}), 'takes only "atol" and "rtol"'),
        (golden(tolerance={"atol": "x"}), r'"tolerance.atol" must be a finite number'),
        (golden(metrics={"mae": {"max": 1}}), "add one label per example"),
        (
            golden(labels=[1, 2], metrics={"f1": {"min": 1}}),
            'unknown metric "f1"; known: accuracy, mae, rmse',
        ),
        (golden(labels=[1, 2], metrics={"mae": {"below": 1}}), r'"metrics.mae" needs "min" and/or "max"'),
        (golden(labels=[1, 2], metrics={"mae": {"max": True}}), "finite number"),
        (golden(output=""), '"output" must be a non-empty string'),
    ],
)
def test_errors_name_the_field(text: str, message: str) -> None:
    """Each malformed golden file is refused with a message naming what to fix."""
    with pytest.raises(GoldenFileError, match=message):
        parse_golden(text, "golden.json")


def test_missing_file_is_a_golden_error(tmp_path: Path) -> None:
    """An unreadable golden file is a GoldenFileError, not an OSError escaping the pass."""
    with pytest.raises(GoldenFileError, match="cannot read golden file"):
        load_golden(tmp_path / "absent.json")
