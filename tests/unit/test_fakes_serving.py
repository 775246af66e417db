"""The in-memory TF Serving keeps the promises tests rely on: docs/tfserving-behaviour.md, not wishes."""

from __future__ import annotations

import numpy as np
import pytest

from agent.adapters.tfserving.base import ServingControl
from agent.core.domain import ServedModel, VersionState, VersionStatus
from agent.core.errors import LoadFailedError, ServingRejectedError
from testkit.fakes_serving import FakeServing, half_plus_two

BASE = "/models/m"


def served(*versions: int, **labels: int) -> ServedModel:
    return ServedModel("m", BASE, versions, tuple(sorted(labels.items())))


def test_is_a_serving_control() -> None:
    """The fake implements the port the agent is written against."""
    assert isinstance(FakeServing(), ServingControl)


def test_new_model_loads_in_reload_existing_ones_later() -> None:
    """B12: a new model is AVAILABLE when apply returns; a version added later loads over status polls."""
    fake = FakeServing(load_polls=2)
    fake.add_version(BASE, 1)
    fake.add_version(BASE, 2)
    fake.apply({"m": served(1)})
    assert fake.available("m") == [1]
    fake.apply({"m": served(1, 2)})
    assert [s.state for s in fake.status("m")] == [VersionState.LOADING, VersionState.AVAILABLE]
    assert fake.status("m")[0] == VersionStatus(2, VersionState.AVAILABLE)


def test_failed_new_model_and_end_rows() -> None:
    """B12/B14/B15: a new model that cannot load raises LoadFailedError, is kept, and its END row stays."""
    fake = FakeServing()
    fake.add_version(BASE, 1, error="DATA_LOSS: Can't parse")
    with pytest.raises(LoadFailedError, match=r"did not become available: \{\{name: m version: 1\} due to"):
        fake.apply({"m": served(1)})
    fake.apply({"m": None})
    assert fake.status("m") == (VersionStatus(1, VersionState.END, "DATA_LOSS: Can't parse"),)


def test_labels_only_on_available_versions() -> None:
    """B13: a label on a version that is not AVAILABLE is refused and changes nothing."""
    fake = FakeServing(load_polls=1)
    fake.add_version(BASE, 1)
    fake.add_version(BASE, 2)
    fake.apply({"m": served(1)})
    with pytest.raises(
        ServingRejectedError, match="FAILED_PRECONDITION: Request to assign label to version 2"
    ):
        fake.apply({"m": served(1, 2, stable=2)})
    assert fake.configured() == {"m": served(1)}


def test_predict_resolution_and_casting() -> None:
    """B16: version, label, or the highest AVAILABLE version answers; inputs are cast to the signature."""
    fake = FakeServing()
    fake.add_version(BASE, 1)
    fake.add_version(BASE, 2, half_plus_two(b=3.0))
    fake.apply({"m": served(1, 2)})
    fake.apply({"m": served(1, 2, stable=1)})
    x = {"x": np.array([1, 2])}
    assert fake.predict("m", x)["y"].tolist() == [3.5, 4.0]
    assert fake.predict("m", x, label="stable")["y"].tolist() == [2.5, 3.0]
    assert fake.predict("m", x, version=1)["y"].dtype == np.float32
    with pytest.raises(ServingRejectedError, match=r"Servable not found for request: Specific\(m, 7\)"):
        fake.predict("m", x, version=7)


def test_reset_is_a_restart_on_the_start_up_config() -> None:
    """reset: TF Serving restarted on the start-up config — earlier states are gone, listed versions load."""
    fake = FakeServing()
    fake.add_version(BASE, 1)
    fake.add_version(BASE, 2)
    fake.apply({"m": served(1, 2)})
    fake.reset([served(2)])
    assert fake.status("m") == (VersionStatus(2, VersionState.AVAILABLE),)
