"""Will the candidate fit in TF Serving's memory beside what it holds? Estimated before any load.

A swap loads the new version beside the old one (docs/tfserving-behaviour.md#b13), and the shadow's
validation does the same, so for a moment TF Serving holds both: the 2× peak that OOM-kills servers whose
model is bigger than half their memory (tensorflow/serving #2017, #1215). The estimate is each loaded
version's allocated bytes on disk (volume.py's count) times ``serving.memory_factor``, measured with
``python -m benchmarks.memory`` (resident growth of tfs-devserver per loaded version over its size on disk).
What does not fit is refused with its numbers: a retry, because a bigger limit (or a drained pod that may
unload first) fixes it, not a new version.
"""

from __future__ import annotations

from pathlib import Path

from agent.adapters.tfserving.base import ServingControl
from agent.core.errors import MemoryLimitError
from agent.pipeline.volume import mib, volume_usage


class MemoryBudget:
    """``serving.memory_limit`` against the estimated resident size of every version TF Serving holds."""

    def __init__(self, limit: int, factor: float) -> None:
        self.limit, self.factor = limit, factor

    def resident(self, version_dir: Path) -> int:
        """Estimated resident bytes of one loaded version."""
        return int(volume_usage([version_dir]) * self.factor)

    def loaded(self, serving: ServingControl) -> int:
        """Estimated resident bytes of every version in the agent's config (every model, shadows too)."""
        return sum(
            self.resident(Path(m.base_path) / str(v))
            for m in serving.configured().values()
            for v in m.versions
        )

    def check_beside(self, serving: ServingControl, version_dir: Path, *, model: str) -> None:
        """Raise MemoryLimitError unless the version fits beside everything loaded now."""
        self.check(serving, version_dir, model=model, drained=False)

    def check(
        self, serving: ServingControl, version_dir: Path, *, model: str, drained: bool, why: str = ""
    ) -> bool:
        """True: the version fits only with the model's loaded versions unloaded first, and the pod is
        ``drained`` (out of traffic), so it may swap old-out/new-in. False: it fits beside them. Anything
        else raises MemoryLimitError with the numbers; ``why`` says why the pod is not drained."""
        new, loaded = self.resident(version_dir), self.loaded(serving)
        if new + loaded <= self.limit:
            return False
        alone = new + loaded - self._own(serving, model)
        if alone <= self.limit and drained:
            return True
        hint = (
            "it would fit with the old version unloaded first, which only a drained pod may do (fleet.drain"
            + (f"; not drained: {why}" if why else "")
            + ")"
            if alone <= self.limit
            else "it does not fit even alone"
        )
        raise MemoryLimitError(
            f"version {version_dir.name} of {model} needs about {mib(new)} beside {mib(loaded)} loaded "
            f"(estimate: size on disk x serving.memory_factor {self.factor:g}) but serving.memory_limit is "
            f"{mib(self.limit)}; {hint}; raise serving.memory_limit with the container's memory limit"
        )

    def _own(self, serving: ServingControl, model: str) -> int:
        served = serving.configured().get(model)
        if served is None:
            return 0
        return sum(self.resident(Path(served.base_path) / str(v)) for v in served.versions)
