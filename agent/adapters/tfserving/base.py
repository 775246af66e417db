"""The one narrow port to TF Serving: apply a config change, read a model's status, send a Predict.

``signature`` (GetModelMetadata) is part of the port because validation needs it: golden inputs in JSON are
cast to the signature's dtypes, and without a golden file the smoke Predict is built from the signature alone.

``client.py`` implements it over gRPC for the real server (and tfs-devserver); ``testkit/fakes_serving.py``
implements it in memory for unit tests of the reconciler.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from agent.core.domain import ServedModel, VersionStatus

Tensors = Mapping[str, npt.NDArray[np.generic]]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature: numpy dtype (``object`` for DT_STRING) and shape.

    ``shape`` is None when the rank is unknown; a None dimension accepts any size (-1 in a TensorShapeProto).
    """

    dtype: np.dtype[Any]
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class Signature:
    """A SignatureDef as the agent needs it: tensors by name."""

    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


@runtime_checkable
class ServingControl(Protocol):
    """What the agent needs from TF Serving."""

    def apply(self, changes: Mapping[str, ServedModel | None]) -> None:
        """Merge ``changes`` (None removes a model) into the whole config the agent owns, write the config
        file atomically, then send it with ReloadConfig. Serialized: concurrent callers never lose each
        other's models. Raises ServingRejectedError (also for a version not complete on disk, B12; the
        config is then unchanged), ServingUnavailableError, or LoadFailedError (a *new* model whose version
        failed to load, B12; the config is kept: drop the model with another apply)."""
        ...

    def reset(self, models: Iterable[ServedModel]) -> None:
        """Write the start-up config file without talking to TF Serving (it may not run yet, B2) and adopt it
        as the current config."""
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

    def signature(
        self, name: str, *, version: int | None = None, signature_name: str = "serving_default"
    ) -> Signature:
        """GetModelMetadata's SignatureDef ``signature_name`` of a version (None: the highest AVAILABLE one).
        Raises ServingRejectedError when the model, version or signature does not exist."""
        ...

    def signatures(self, name: str, *, version: int | None = None) -> Mapping[str, Signature]:
        """Every SignatureDef of a version (None: the highest AVAILABLE one) by signature name, from
        GetModelMetadata; the signature gate compares the candidate's with the serving version's.
        Raises ServingRejectedError when the model or version does not exist."""
        ...
