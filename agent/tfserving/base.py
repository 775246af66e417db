"""The one narrow port to TF Serving: apply a config change, read a model's status, send a Predict.

``client.py`` implements it over gRPC for the real server (and tfs-devserver); ``tests/fakes.py`` implements it
in memory for unit tests of the reconciler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from agent.domain import ServedModel, VersionStatus

Tensors = Mapping[str, npt.NDArray[np.generic]]


@runtime_checkable
class ServingControl(Protocol):
    """What the agent needs from TF Serving."""

    def apply(self, changes: Mapping[str, ServedModel | None]) -> None:
        """Merge ``changes`` (None removes a model) into the whole config the agent owns, write the config file
        atomically, then send it with ReloadConfig. Serialized: concurrent callers never lose each other's
        models. Raises ServingRejectedError / ServingUnavailableError."""
        ...

    def configured(self) -> Mapping[str, ServedModel]:
        """The config as last applied (what the file says)."""
        ...

    def status(self, name: str) -> Sequence[VersionStatus]:
        """GetModelStatus for ``name``; empty when TF Serving has never seen the model."""
        ...

    def predict(
        self,
        name: str,
        inputs: Tensors,
        *,
        version: int | None = None,
        label: str | None = None,
        signature_name: str = "serving_default",
    ) -> Tensors:
        """One Predict; inputs are cast to the signature's dtypes. Returns outputs by name."""
        ...
