"""Shadow validation against a real model server: a good candidate passes, a wrong or corrupt one fails, the
shadow is always dropped, and warmup records written from golden inputs are replayed by the server (B22).

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agent.adapters.tfserving import config_text
from agent.adapters.tfserving.client import GrpcServingControl
from agent.core.domain import ServedModel, VersionState
from agent.core.golden import Golden, parse_golden
from agent.pipeline.validate import probe_model, validate_candidate
from agent.pipeline.warmup import WARMUP_FILE, write_warmup
from testkit.poll import poll_until
from testkit.savedmodels import build_half_plus_two, corrupt_savedmodel
from testkit.servers import ServerHandle

GOLDEN = parse_golden(
    json.dumps(
        {
            "instances": [1.0, 2.0, 5.0],
            "expected": [2.5, 3.0, 4.5],
            "labels": [2.5, 3.0, 4.5],
            "metrics": {"mae": {"max": 0.1}},
        }
    )
)


def validate(
    control: GrpcServingControl, name: str, base: Path, version: int, golden: Golden | None, **kw: Any
) -> Any:
    verdict = validate_candidate(
        control,
        model=name,
        shadow_name=f"{name}__candidate",
        base_path=base,
        version=version,
        golden=golden,
        load_timeout=60,
        **kw,
    )
    assert f"{name}__candidate" not in control.configured()
    assert f"{name}__candidate" not in {m.name for m in config_text.parse(control.config_file.read_text())}
    return verdict


def test_good_candidate_passes(control: GrpcServingControl, tmp_path: Path) -> None:
    """A correct candidate passes load, predict, expected and gates in the server; the shadow is dropped."""
    build_half_plus_two(tmp_path / "good", 1)
    verdict = validate(control, "good", tmp_path / "good", 1, GOLDEN)
    assert verdict.ok, verdict.reason
    assert [c.name for c in verdict.checks] == ["load", "predict", "expected", "mae gate"]
    assert verdict.metrics["mae"] == pytest.approx(0.0, abs=1e-6)
    assert control.status("good") == ()  # clients asking for the real name never saw it


def test_golden_mismatch_fails(control: GrpcServingControl, tmp_path: Path) -> None:
    """A candidate whose outputs differ from the golden values is rejected with the first difference."""
    build_half_plus_two(tmp_path / "off", 1, b=3.0)
    verdict = validate(control, "off", tmp_path / "off", 1, GOLDEN)
    assert not verdict.ok
    assert verdict.reason.startswith(
        "expected: output: 3 of 3 value(s) differ; first at (0,): got 3.5, expected 2.5"
    )
    assert "mae gate: mae=1 above max 0.1" in verdict.reason


def test_corrupt_candidate_fails_to_load(control: GrpcServingControl, tmp_path: Path) -> None:
    """A corrupt SavedModel fails the load check with TF Serving's error, and the shadow is still dropped."""
    corrupt_savedmodel(build_half_plus_two(tmp_path / "corrupt", 1))
    verdict = validate(control, "corrupt", tmp_path / "corrupt", 1, GOLDEN)
    assert not verdict.ok
    assert [c.name for c in verdict.checks] == ["load"]
    assert "DATA_LOSS: Can't parse" in verdict.reason
    assert [s.state for s in control.status("corrupt__candidate")] == [VersionState.END]


def test_no_golden_smoke_predict(control: GrpcServingControl, tmp_path: Path) -> None:
    """Without a golden file the load plus a Predict of zeros built from the signature is the check."""
    build_half_plus_two(tmp_path / "smoke", 4)
    verdict = validate(control, "smoke", tmp_path / "smoke", 4, None)
    assert verdict.ok, verdict.reason
    assert verdict.checks[-1].detail == "outputs y"


def test_champion_comparison_and_probe(control: GrpcServingControl, tmp_path: Path) -> None:
    """The serving version is scored through the real name on the same data; a candidate behind it by more
    than champion_tolerance fails. The bake probe answers through the label."""
    base = tmp_path / "champ"
    build_half_plus_two(base, 1)
    build_half_plus_two(base, 2, b=2.05)
    control.apply({"champ": ServedModel("champ", str(base), (1,))})
    control.apply({"champ": ServedModel("champ", str(base), (1,), (("stable", 1),))})
    scored = parse_golden(json.dumps({"instances": [1.0, 2.0, 5.0], "labels": [2.5, 3.0, 4.5]}))
    verdict = validate(control, "champ", base, 2, scored, champion_version=1, champion_tolerance=0.01)
    assert not verdict.ok
    assert verdict.reason.startswith("champion: worse than serving by more than 0.01")
    assert verdict.champion_metrics["mae"] == pytest.approx(0.0, abs=1e-6)
    assert verdict.metrics["mae"] == pytest.approx(0.05, abs=1e-5)
    assert probe_model(control, "champ", GOLDEN, label="stable") is None
    assert "Unrecognized servable version label" in (
        probe_model(control, "champ", GOLDEN, label="nope") or ""
    )
    control.apply({"champ": None})


def test_warmup_is_replayed_by_the_server(
    control: GrpcServingControl, server: ServerHandle, tmp_path: Path
) -> None:
    """B22: the warmup file written from golden inputs is accepted and replayed while loading."""
    version_dir = build_half_plus_two(tmp_path / "warm", 3)
    assert write_warmup(version_dir, GOLDEN) is True
    assert write_warmup(version_dir, GOLDEN) is False
    verdict = validate(control, "warm", tmp_path / "warm", 3, GOLDEN)
    assert verdict.ok, verdict.reason
    path = re.escape(str(version_dir / WARMUP_FILE))
    pattern = rf"Finished reading warmup data for model at {path}\. Number of warmup records read: 2\."
    poll_until(
        lambda: re.search(pattern, server.output_text()), timeout=10, what="the warmup replay log line"
    )
