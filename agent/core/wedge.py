"""Is TF Serving's ReloadConfig wedged? Pure bookkeeping of what the client saw, one verdict out.

After one bad new model TF Serving blocks every later ReloadConfig until it restarts (the call is serialized
behind the stuck one, docs/tfserving-behaviour.md#b12; tensorflow/serving #1794, #964) while GetModelStatus
and Predict go on answering. The agent never sends such a path itself, but anything else with access to port
8500 can. A wedge is therefore ``threshold`` ReloadConfig deadlines in a row, each followed by a status probe
that answered and showed none of the reload's new models making progress (a slow load is not a wedge). Any
reply to ReloadConfig, or a server that does not answer at all (restarting), ends it (ADR 17).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReloadWatch:
    """Consecutive wedge-like ReloadConfig deadlines; ``wedged`` once there are ``threshold`` of them."""

    threshold: int = 3
    deadlines: int = 0
    last: str = ""
    """The newest deadline's message."""

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"threshold must be at least 1, got {self.threshold}")

    @property
    def wedged(self) -> bool:
        return self.deadlines >= self.threshold

    def deadline(self, what: str) -> bool:
        """Count one deadline while TF Serving still answers status; True when this one makes it wedged."""
        was = self.wedged
        self.deadlines, self.last = self.deadlines + 1, what
        return self.wedged and not was

    def cleared(self) -> bool:
        """ReloadConfig answered, a load is progressing, or the server is down (restarting): start over.
        True when it was wedged until now."""
        was = self.wedged
        self.deadlines, self.last = 0, ""
        return was

    @property
    def reason(self) -> str | None:
        """Why reloads count as wedged, with the fix; None while they do not."""
        if not self.wedged:
            return None
        return (
            f"{self.deadlines} ReloadConfig calls in a row ran past their deadline while GetModelStatus "
            f"answered (last: {self.last}); TF Serving's reloads look wedged behind a stuck one: restart TF "
            "Serving (serving.wedge_liveness lets its livenessProbe do it)"
        )
