"""Shadow validation against the in-memory TF Serving: load, ask, judge, and always drop the shadow.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from agent.adapters.tfserving.base import Signature, Tensors, TensorSpec
from agent.core.domain import ServedModel
from agent.core.errors import LoadFailedError, ServingUnavailableError
from agent.core.golden import Golden, parse_golden
from agent.infra.clock import ManualClock
from agent.pipeline.validate import probe_model, validate_candidate
from testkit.fakes_serving import FakeServing, half_plus_two

BASE = "/models/m"
SHADOW = "m__candidate"


def golden(**fields: Any) -> Golden:
    return parse_golden(json.dumps({"instances": [1.0, 2.0, 5.0], **fields}))


GOOD = golden(expected=[2.5, 3.0, 4.5], labels=[2.5, 3.0, 4.5], metrics={"mae": {"max": 0.1}})


def fake(*versions: int, **kw: Any) -> FakeServing:
    serving = FakeServing(load_polls=1)
    for v in versions:
        serving.add_version(BASE, v, **kw)
    return serving


def validate(serving: FakeServing, version: int, g: Golden | None, **kw: Any) -> Any:
    return validate_candidate(
        serving,
        model="m",
        shadow_name=SHADOW,
        base_path=BASE,
        version=version,
        golden=g,
        load_timeout=5,
        clock=ManualClock(),
        **kw,
    )


def test_good_candidate_passes_and_shadow_is_dropped() -> None:
    """A correct candidate passes every check; it was served as the shadow only, then removed."""
    serving = fake(2)
    verdict = validate(serving, 2, GOOD)
    assert verdict.ok, verdict.reason
    assert [c.name for c in verdict.checks] == ["load", "predict", "expected", "mae gate"]
    assert verdict.metrics == pytest.approx({"mae": 0.0, "rmse": 0.0})
    assert serving.applied[0] == {SHADOW: ServedModel(SHADOW, BASE, (2,))}
    assert serving.configured() == {}
    assert serving.predictions == [(SHADOW, 2, "serving_default")]


def test_mismatch_fails_with_the_reason() -> None:
    """Outputs off the golden values make the verdict not ok, with every failing check in the reason."""
    serving = FakeServing()
    serving.add_version(BASE, 3, half_plus_two(a=0.5, b=3.0))
    verdict = validate(serving, 3, GOOD)
    assert not verdict.ok
    assert verdict.reason.startswith("expected: output: 3 of 3 value(s) differ")
    assert "mae gate: mae=1 above max 0.1" in verdict.reason
    assert serving.configured() == {}


def test_load_failure_is_a_verdict_not_an_exception() -> None:
    """A candidate that fails to load (B12/B14) yields a not-ok verdict carrying TF Serving's error."""
    serving = fake(4, error="DATA_LOSS: Can't parse /models/m/4/saved_model.pb as binary proto")
    verdict = validate(serving, 4, GOOD)
    assert not verdict.ok
    assert [c.name for c in verdict.checks] == ["load"]
    assert "DATA_LOSS" in verdict.reason
    assert "Can't parse" in verdict.reason
    assert serving.configured() == {}


def test_incomplete_version_is_not_sent() -> None:
    """A version missing on disk is refused before TF Serving sees it (B12) and fails the verdict."""
    verdict = validate(fake(), 9, GOOD)
    assert not verdict.ok
    assert "not a complete SavedModel" in verdict.reason


def test_golden_that_does_not_fit_fails_the_predict_check() -> None:
    """Golden inputs naming an input the signature lacks fail the candidate, naming the input."""
    verdict = validate(fake(2), 2, parse_golden(json.dumps({"inputs": {"z": [1.0]}})))
    assert [(c.name, c.ok) for c in verdict.checks] == [("load", True), ("predict", False)]
    assert "input 'z' is not in the signature" in verdict.reason


def test_no_golden_means_a_smoke_predict() -> None:
    """Without a golden file the check is the load plus one Predict of zeros shaped by the signature."""
    seen: list[Tensors] = []

    def model(inputs: Tensors) -> dict[str, Any]:
        seen.append(inputs)
        return {"y": np.zeros(1)}

    spec = TensorSpec(np.dtype(np.int64), (None, 3))
    serving = FakeServing()
    serving.add_version(BASE, 2, model, signature=Signature({"x": spec}, {}))
    verdict = validate(serving, 2, None)
    assert verdict.ok
    assert seen[0]["x"].dtype == np.int64
    assert seen[0]["x"].shape == (1, 3)


def test_champion_is_scored_through_the_main_name() -> None:
    """With champion_tolerance, the serving version answers the same golden data via the model's name."""
    serving = fake(1, 2)
    serving.apply({"m": ServedModel("m", BASE, (1,))})
    serving.versions[(BASE, 2)].function = half_plus_two(b=2.05)  # candidate slightly off
    g = golden(labels=[2.5, 3.0, 4.5], metrics={"mae": {"max": 1}})
    verdict = validate(serving, 2, g, champion_version=1, champion_tolerance=0.01)
    assert ("m", 1, "serving_default") in serving.predictions
    assert verdict.champion_metrics == pytest.approx({"mae": 0.0, "rmse": 0.0})
    assert not verdict.ok
    assert verdict.reason.startswith("champion: worse than serving by more than 0.01")
    assert serving.configured() == {"m": ServedModel("m", BASE, (1,))}


def test_unavailable_server_propagates_after_trying_to_drop_the_shadow() -> None:
    """An unreachable server says nothing about the candidate: the error propagates (retry later)."""

    class DropsOut(FakeServing):
        def predict(self, *args: Any, **kwargs: Any) -> Tensors:
            self.unavailable = True
            raise ServingUnavailableError("UNAVAILABLE: restarting")

    serving = DropsOut()
    serving.add_version(BASE, 2)
    with pytest.raises(ServingUnavailableError, match="restarting"):
        validate(serving, 2, GOOD)
    serving.unavailable = False
    assert serving.configured() == {SHADOW: ServedModel(SHADOW, BASE, (2,))}  # left for the next pass


def test_probe_model_through_label() -> None:
    """The bake probe asks the real name by label and checks expected outputs; None means healthy."""
    serving = fake(1)
    serving.apply({"m": ServedModel("m", BASE, (1,))})
    serving.apply({"m": ServedModel("m", BASE, (1,), (("stable", 1),))})
    assert probe_model(serving, "m", GOOD, label="stable") is None
    serving.versions[(BASE, 1)].function = half_plus_two(b=0)
    assert (probe_model(serving, "m", GOOD, label="stable") or "").startswith("expected: output: 3 of 3")
    assert "Unrecognized servable version label: canary" in (
        probe_model(serving, "m", None, label="canary") or ""
    )


class StaleEndServing(FakeServing):
    """B12 race: ReloadConfig reports UNKNOWN from an earlier shadow's unload, yet this load succeeds."""

    def apply(self, changes: Any) -> None:
        super().apply(changes)
        if any(m is not None for m in changes.values()):
            raise LoadFailedError("ReloadConfig: UNKNOWN: 1 model(s) did not become available: {{...}}")


def test_stale_end_from_reload_config_does_not_fail_a_good_candidate() -> None:
    """The version's own status decides the load check, not ReloadConfig's answer about the name."""
    serving = StaleEndServing(load_polls=1)
    serving.add_version(BASE, 4)
    verdict = validate(serving, 4, GOOD)
    assert verdict.ok, verdict.reason
    assert serving.configured() == {}


RENAMED = Signature(
    {"features": TensorSpec(np.dtype(np.float32), (None,))}, {"y": TensorSpec(np.dtype(np.float32), (None,))}
)


def renamed_model(inputs: Tensors) -> dict[str, Any]:
    return {"y": np.asarray(inputs["features"], dtype=np.float32) * 0.5 + 2.0}


def serving_v1_and_renamed_v2() -> FakeServing:
    serving = fake(1)
    serving.add_version(BASE, 2, renamed_model, signature=RENAMED)
    serving.apply({"m": ServedModel("m", BASE, (1,))})
    return serving


def test_renamed_input_is_rejected_naming_it() -> None:
    """A candidate whose input is renamed fails the signature gate, before any Predict, naming both names."""
    serving = serving_v1_and_renamed_v2()
    verdict = validate(serving, 2, GOOD, champion_version=1)
    assert not verdict.ok
    assert [(c.name, c.ok) for c in verdict.checks] == [("load", True), ("signatures", False)]
    assert verdict.reason.startswith(
        "signatures: signature serving_default: input 'x' removed (inputs now: 'features')"
    )
    assert serving.predictions == []
    assert serving.configured() == {"m": ServedModel("m", BASE, (1,))}


def test_allowed_signature_change_passes_and_says_so() -> None:
    """policy.signature_change allow lets the break through; the check's detail still names it."""
    verdict = validate(serving_v1_and_renamed_v2(), 2, GOOD, champion_version=1, signature_change="allow")
    assert verdict.ok, verdict.reason
    gate = verdict.checks[1]
    assert (gate.name, gate.ok) == ("signatures", True)
    assert gate.detail.startswith(
        "breaking change allowed by policy.signature_change: signature serving_default"
    )


def test_first_version_has_no_signature_gate() -> None:
    """With nothing serving there is nothing to break: no signatures check runs."""
    verdict = validate(fake(2), 2, GOOD, champion_version=None)
    assert "signatures" not in [c.name for c in verdict.checks]


def test_serving_version_without_metadata_is_not_compared() -> None:
    """A serving version TF Serving no longer knows cannot be compared; the gate says so and passes."""
    verdict = validate(fake(2), 2, GOOD, champion_version=1)
    assert verdict.ok, verdict.reason
    assert verdict.checks[1].detail.startswith("not compared:")
