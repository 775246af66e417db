"""Validate a candidate inside the serving runtime: load it as a shadow model, ask it the golden questions.

The candidate is added to TF Serving as ``<model>__candidate`` with ``specific {N}``, so clients asking the
real name (or "latest") never reach it, and it runs on the exact server build that would serve it. Whatever
happens the shadow is dropped again. A verdict is "not ok" for anything the candidate (or its golden file) is
to blame for — load failure or timeout, a rejected Predict, mismatching outputs, failed gates; only
ServingUnavailableError propagates, because an unreachable server says nothing about the candidate.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.adapters.tfserving.base import ServingControl, Signature, Tensors
from agent.adapters.tfserving.tensors import golden_inputs, zeros_for
from agent.adapters.tfserving.wait import wait_for_versions, wait_unloaded
from agent.core.checks import checks_for, compute_metrics, outputs_match, run_checks
from agent.core.domain import CheckResult, ServedModel, Verdict
from agent.core.errors import (
    AgentError,
    GoldenFileError,
    LoadFailedError,
    LoadTimeoutError,
    ServingRejectedError,
)
from agent.core.golden import Golden
from agent.core.signatures import breaking_changes
from agent.infra.clock import Clock

_CANDIDATE_FAULTS = (LoadFailedError, LoadTimeoutError, ServingRejectedError, GoldenFileError)


def validate_candidate(
    serving: ServingControl,
    *,
    model: str,
    shadow_name: str,
    base_path: Path | str,
    version: int,
    golden: Golden | None,
    champion_version: int | None = None,
    champion_tolerance: float | None = None,
    load_timeout: float = 600.0,
    clock: Clock | None = None,
    signature_change: str = "reject",
    champion_signatures: Mapping[str, Signature] | None = None,
) -> Verdict:
    """Load ``version`` from ``base_path`` as ``shadow_name``, check it, drop it; the Verdict says why not ok.

    The champion (``champion_version`` of ``model``, the serving version, through the real name) has its
    SignatureDefs compared with the candidate's (``signature_change`` "allow" reports a break without failing
    on it), and is scored on the same golden data when ``champion_tolerance`` asks for a comparison.
    ``champion_signatures``: read before the champion was unloaded (a drained pod validating unload-first).
    """
    shadow = ServedModel(shadow_name, str(base_path), (version,))
    gate = _SignatureGate(model, champion_version, signature_change == "allow", champion_signatures)
    try:
        loaded = _load(serving, shadow, load_timeout, clock)
        verdict = _validate(serving, shadow, model, golden, gate, champion_tolerance, loaded)
    except BaseException:
        with contextlib.suppress(AgentError):  # the first error is the one worth reporting
            serving.apply({shadow_name: None})
        raise
    serving.apply({shadow_name: None})
    # The swap loads the version again beside the old one: free the shadow's memory first (ADR 2).
    wait_unloaded(serving, shadow_name, timeout=min(load_timeout, 60.0), clock=clock)
    return verdict


def validate_in_place(
    serving: ServingControl,
    *,
    model: str,
    version: int,
    golden: Golden | None,
    champion_version: int | None = None,
    champion_tolerance: float | None = None,
    signature_change: str = "reject",
) -> Verdict:
    """``validation: in_place``: the same checks on ``version`` already loaded beside the serving version
    under the real name (Promotion.load_beside), every request naming the version explicitly, so the labels
    never point at it before the verdict. Loads and unloads nothing; ServingUnavailableError propagates."""
    target = ServedModel(model, "", (version,))
    gate = _SignatureGate(model, champion_version, signature_change == "allow")
    beside = f" beside {champion_version}" if champion_version is not None else ""
    loaded = CheckResult("load", True, f"version {version} AVAILABLE as {model}{beside}")
    return _validate(serving, target, model, golden, gate, champion_tolerance, loaded)


def _validate(
    serving: ServingControl,
    shadow: ServedModel,
    model: str,
    golden: Golden | None,
    gate: _SignatureGate,
    champion_tolerance: float | None,
    loaded: CheckResult,
) -> Verdict:
    """Every check after the load (``loaded``) on ``shadow`` (its name and only version)."""
    version, champion_version = shadow.versions[0], gate.serving_version
    checks = [loaded]
    if checks[0].ok and champion_version is not None:
        checks.append(gate.check(serving, shadow.name, version))
    if not all(c.ok for c in checks):
        return Verdict(version, False, tuple(checks))
    try:
        inputs = request_for(serving, shadow.name, version, golden)
        outputs = _predict(serving, shadow.name, inputs, version, golden)
    except _CANDIDATE_FAULTS as err:
        return Verdict(version, False, (*checks, CheckResult("predict", False, err.reason)))
    checks.append(CheckResult("predict", True, f"outputs {', '.join(sorted(outputs))}"))
    if golden is None:
        return Verdict(version, True, tuple(checks))
    champion = None
    if champion_version is not None and champion_tolerance is not None and golden.labels is not None:
        champion = _score_champion(serving, model, champion_version, inputs, golden)
    checks.extend(
        run_checks(
            outputs, golden, checks_for(golden, champion=champion, champion_tolerance=champion_tolerance)
        )
    )
    return Verdict(
        version, all(c.ok for c in checks), tuple(checks), compute_metrics(outputs, golden), champion or {}
    )


@dataclass(frozen=True)
class _SignatureGate:
    """The candidate's SignatureDefs against the serving version's (agent/core/signatures.py, ADR 17)."""

    model: str
    serving_version: int | None
    allow: bool
    known: Mapping[str, Signature] | None = None
    """The serving version's SignatureDefs read earlier (it is unloaded now), else asked for."""

    def check(self, serving: ServingControl, shadow: str, version: int) -> CheckResult:
        """Not ok when a change breaks the serving version's clients, unless allowed; ServingUnavailableError
        propagates (an unreachable server says nothing about the candidate)."""
        try:
            old = self.known or serving.signatures(self.model, version=self.serving_version)
        except ServingRejectedError as err:  # e.g. the serving version is gone: nothing to compare with
            return CheckResult("signatures", True, f"not compared: {err.reason}")
        try:
            new = serving.signatures(shadow, version=version)
        except ServingRejectedError as err:
            return CheckResult("signatures", False, err.reason)
        problems = breaking_changes(old, new)
        if not problems:
            return CheckResult("signatures", True, f"compatible with version {self.serving_version}")
        if self.allow:
            return CheckResult(
                "signatures",
                True,
                "breaking change allowed by policy.signature_change: " + "; ".join(problems),
            )
        return CheckResult("signatures", False, "; ".join(problems))


def _load(serving: ServingControl, shadow: ServedModel, timeout: float, clock: Clock | None) -> CheckResult:
    try:
        # B12 answers UNKNOWN for a new name whose versions are all END — which may be a previous shadow's
        # unload, not this load. The version's own status below is the verdict either way.
        with contextlib.suppress(LoadFailedError):
            serving.apply({shadow.name: shadow})
        wait_for_versions(serving, shadow.name, shadow.versions, timeout=timeout, clock=clock)
    except (LoadFailedError, LoadTimeoutError, ServingRejectedError) as err:
        return CheckResult("load", False, err.reason)
    return CheckResult("load", True, f"version {shadow.versions[0]} AVAILABLE as {shadow.name}")


def request_for(serving: ServingControl, name: str, version: int | None, golden: Golden | None) -> Tensors:
    """The golden inputs as tensors, or without a golden file a smoke request built from the signature."""
    signature_name = golden.signature_name if golden else "serving_default"
    signature = serving.signature(name, version=version, signature_name=signature_name)
    return golden_inputs(golden, signature) if golden else smoke_inputs(signature)


def smoke_inputs(signature: Signature) -> Tensors:
    """Zeros of each input's dtype and shape (a None dimension as 1): proves the model runs at all."""
    return {name: zeros_for(spec) for name, spec in signature.inputs.items()}


def _predict(
    serving: ServingControl,
    name: str,
    inputs: Tensors,
    version: int | None,
    golden: Golden | None,
    label: str | None = None,
) -> Tensors:
    signature_name = golden.signature_name if golden else "serving_default"
    return serving.predict(name, inputs, version=version, label=label, signature_name=signature_name)


def _score_champion(
    serving: ServingControl, model: str, version: int, inputs: Tensors, golden: Golden
) -> Mapping[str, float]:
    """The serving version's metrics on the same golden data; empty when it cannot answer this request
    (e.g. its signature changed), which the champion check reports instead of blocking on."""
    try:
        outputs = _predict(serving, model, inputs, version, golden)
    except (ServingRejectedError, GoldenFileError):
        return {}
    return compute_metrics(outputs, golden)


def probe_model(
    serving: ServingControl, name: str, golden: Golden | None, *, label: str | None = None
) -> str | None:
    """One bake check through the real name (``label``, else the highest version): None when the model
    answers (and matches ``expected`` when the golden file has it), else what went wrong.

    ServingUnavailableError propagates: whether an unreachable server is the new version's fault is the
    caller's call.
    """
    try:
        inputs = request_for(serving, name, None, golden)
        outputs = _predict(serving, name, inputs, None, golden, label=label)
    except _CANDIDATE_FAULTS as err:
        return err.reason
    if golden is not None and golden.expected is not None:
        result = outputs_match(outputs, golden)
        return None if result.ok else f"{result.name}: {result.detail}"
    return None


def score_version(serving: ServingControl, model: str, version: int, golden: Golden) -> dict[str, float]:
    """Re-score a version that already serves on (fresh) golden data: the same Predict path as validation,
    through the real name by explicit version, so no shadow is loaded and the labels never move.

    Golden data that does not fit the version's signature (inputs that cannot be cast, or a Predict TF
    Serving rejects) raises GoldenFileError: the file is to blame, not the version. ServingUnavailableError
    propagates.
    """
    try:
        inputs = request_for(serving, model, version, golden)
        outputs = _predict(serving, model, inputs, version, golden)
    except (ServingRejectedError, GoldenFileError) as err:
        raise GoldenFileError(f"it does not fit version {version} of {model}: {err.reason}") from err
    return compute_metrics(outputs, golden)
