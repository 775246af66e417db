"""An in-memory TF Serving behind the ServingControl port, honest about the behaviours the agent relies on.

What it reproduces (docs/tfserving-behaviour.md): refusing versions that are not "on disk" (the client's B12
check), labels only on AVAILABLE versions (B13), ReloadConfig waiting for *new* models and failing with
UNKNOWN-as-LoadFailedError when their version fails (B12), versions going START → LOADING → AVAILABLE or END
with the error (B14) over ``load_polls`` status calls, END rows kept forever (B15), Predict resolution by
version, label or highest AVAILABLE (B16) with inputs cast to the signature. Everything sent is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from agent.adapters.tfserving.base import Signature, Tensors, TensorSpec
from agent.adapters.tfserving.tensors import cast
from agent.core.domain import ServedModel, VersionState, VersionStatus
from agent.core.errors import LoadFailedError, ServingRejectedError, ServingUnavailableError

Function = Callable[[Tensors], Mapping[str, npt.ArrayLike]]

VECTOR = TensorSpec(np.dtype(np.float32), (None,))
HALF_PLUS_TWO_SIGNATURE = Signature(inputs={"x": VECTOR}, outputs={"y": VECTOR})


def half_plus_two(a: float = 0.5, b: float = 2.0) -> Function:
    """TF Serving's classic test model: y = a * x + b."""
    return lambda inputs: {"y": np.asarray(inputs["x"], dtype=np.float32) * a + b}


@dataclass
class FakeVersion:
    """A version directory as the fake server would load it."""

    function: Function = field(default_factory=half_plus_two)
    signature: Signature = HALF_PLUS_TWO_SIGNATURE
    error: str = ""
    """Non-empty: loading fails and the version ends in END with this message (e.g. a corrupt graph)."""


class FakeServing:
    """ServingControl in memory. ``versions`` is the disk; ``applied`` every config received, in order."""

    def __init__(self, *, load_polls: int = 0) -> None:
        self.load_polls = load_polls
        self.versions: dict[tuple[str, int], FakeVersion] = {}
        self.applied: list[dict[str, ServedModel]] = []
        self.predictions: list[tuple[str, int, str]] = []
        """(model, version that answered, signature) per successful Predict."""
        self.unavailable = False
        """True: every call fails as if the server were restarting."""
        self._config: dict[str, ServedModel] = {}
        self._states: dict[str, dict[int, VersionStatus]] = {}
        self._pending: dict[tuple[str, int], int] = {}

    # ---- test set-up --------------------------------------------------------------------------------------

    def add_version(
        self,
        base_path: str,
        version: int,
        function: Function | None = None,
        *,
        signature: Signature = HALF_PLUS_TWO_SIGNATURE,
        error: str = "",
    ) -> FakeVersion:
        """Put a version "on disk" under ``base_path``."""
        made = FakeVersion(function or half_plus_two(), signature, error)
        self.versions[(str(base_path), version)] = made
        return made

    def available(self, name: str) -> list[int]:
        return sorted(v for v, s in self._states.get(name, {}).items() if s.state is VersionState.AVAILABLE)

    # ---- ServingControl -----------------------------------------------------------------------------------

    def reset(self, models: Iterable[ServedModel]) -> None:
        """The start-up config, as if TF Serving (re)started on it: it forgets every earlier status and loads
        each listed version before answering (B2)."""
        self._config = {m.name: m for m in models}
        self.applied.append(dict(self._config))
        self._states, self._pending = {}, {}
        self._converge(set(self._config))

    def configured(self) -> Mapping[str, ServedModel]:
        return dict(self._config)

    def apply(self, changes: Mapping[str, ServedModel | None]) -> None:
        self._reachable()
        merged = dict(self._config)
        for name, model in changes.items():
            if model is None:
                merged.pop(name, None)
            else:
                merged[name] = model
        for model in merged.values():
            if self._config.get(model.name) != model:
                self._check_on_disk(model)
            self._check_labels(model)
        new_names = set(merged) - set(self._config)
        self._config = merged
        self.applied.append(dict(merged))
        self._converge(new_names)
        self._raise_for_failed(new_names)

    def status(self, name: str) -> Sequence[VersionStatus]:
        self._reachable()
        for model, version in list(self._pending):
            if model == name:
                self._poll(model, version)
        rows = self._states.get(name, {})
        return tuple(rows[v] for v in sorted(rows, reverse=True))

    def signature(
        self, name: str, *, version: int | None = None, signature_name: str = "serving_default"
    ) -> Signature:
        self._reachable()
        served = self._resolve(name, version, None)
        if signature_name != "serving_default":
            raise ServingRejectedError(f"GetModelMetadata {name}: no signature {signature_name!r}")
        return self.versions[(self._config[name].base_path, served)].signature

    def signatures(self, name: str, *, version: int | None = None) -> Mapping[str, Signature]:
        """The fake's models have one signature, ``serving_default``."""
        return {"serving_default": self.signature(name, version=version)}

    def predict(
        self,
        name: str,
        inputs: Tensors,
        *,
        version: int | None = None,
        label: str | None = None,
        signature_name: str = "serving_default",
    ) -> Tensors:
        self._reachable()
        served = self._resolve(name, version, label)
        loaded = self.versions[(self._config[name].base_path, served)]
        if signature_name != "serving_default":
            raise ServingRejectedError(f"Predict {name}: INVALID_ARGUMENT: no signature {signature_name!r}")
        missing = sorted(set(loaded.signature.inputs) - set(inputs))
        if missing or set(inputs) - set(loaded.signature.inputs):
            raise ServingRejectedError(
                f"Predict {name}: INVALID_ARGUMENT: inputs {sorted(inputs)} do not match "
                f"the signature's {sorted(loaded.signature.inputs)}"
            )
        typed = {k: cast(v, loaded.signature.inputs[k]) for k, v in inputs.items()}
        outputs = {k: np.asarray(v) for k, v in loaded.function(typed).items()}
        self.predictions.append((name, served, signature_name))
        return outputs

    # ---- the server's side --------------------------------------------------------------------------------

    def _reachable(self) -> None:
        if self.unavailable:
            raise ServingUnavailableError("fake TF Serving: UNAVAILABLE: Connection refused")

    def _check_on_disk(self, model: ServedModel) -> None:
        for version in model.versions:
            if (model.base_path, version) not in self.versions:
                raise ServingRejectedError(
                    f"not sent: {model.base_path}/{version} is not a complete SavedModel"
                )

    def _check_labels(self, model: ServedModel) -> None:
        states = self._states.get(model.name, {})
        for _label, version in model.labels:
            state = states.get(version)
            if state is None or state.state is not VersionState.AVAILABLE:
                raise ServingRejectedError(
                    f"ReloadConfig: FAILED_PRECONDITION: Request to assign label to version {version} of "
                    f"model {model.name}, which is not currently available for inference"
                )

    def _converge(self, new_names: set[str]) -> None:
        for name in set(self._states) | set(self._config):
            wanted = set(self._config[name].versions) if name in self._config else set()
            rows = self._states.setdefault(name, {})
            for version, row in list(rows.items()):
                if version not in wanted and row.state is not VersionState.END:
                    rows[version] = VersionStatus(version, VersionState.END)  # B11: unloaded
                    self._pending.pop((name, version), None)
            for version in sorted(wanted):
                old = rows.get(version)
                if old is None or (old.state is VersionState.END and not old.error):
                    rows[version] = VersionStatus(version, VersionState.START)
                    self._pending[(name, version)] = 0 if name in new_names else self.load_polls
                    self._poll(name, version)

    def _poll(self, name: str, version: int) -> None:
        """One status poll's worth of loading: a version resolves on the ``load_polls``-th poll."""
        left = self._pending[(name, version)]
        if left > 1:
            self._pending[(name, version)] = left - 1
            self._states[name][version] = VersionStatus(version, VersionState.LOADING)
            return
        if left == 1:
            self._pending[(name, version)] = 0
            return
        del self._pending[(name, version)]
        made = self.versions[(self._config[name].base_path, version)]
        state = VersionState.END if made.error else VersionState.AVAILABLE
        self._states[name][version] = VersionStatus(version, state, made.error)

    def _raise_for_failed(self, new_names: set[str]) -> None:
        """B12: ReloadConfig waits for new models and fails with UNKNOWN when none of their versions loads."""
        for name in sorted(new_names):
            rows = [self._states[name][v] for v in self._config[name].versions]
            if all(row.failed for row in rows):
                detail = "".join(
                    f"{{name: {name} version: {r.version}}} due to error: {r.error}, " for r in rows
                )
                raise LoadFailedError(
                    f"ReloadConfig: UNKNOWN: 1 model(s) did not become available: {{{detail}}}"
                )

    def _resolve(self, name: str, version: int | None, label: str | None) -> int:
        """B16: a version, a label, or the highest AVAILABLE version."""
        if name not in self._config:
            raise ServingRejectedError(f"NOT_FOUND: Servable not found for request: Latest({name})")
        if label is not None and version is None:
            labels = dict(self._config[name].labels)
            if label not in labels:
                raise ServingRejectedError(f"INVALID_ARGUMENT: Unrecognized servable version label: {label}")
            version = labels[label]
        live = self.available(name)
        if version is None and live:
            return live[-1]
        if version is None or version not in live:
            spec = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise ServingRejectedError(f"NOT_FOUND: Servable not found for request: {spec}")
        return version
