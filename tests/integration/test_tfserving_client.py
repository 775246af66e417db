"""GrpcServingControl against a real model server (tfs-devserver, or the stock binary with TFS_BINARY).

The server runs with ``--model_config_file_poll_wait_seconds=1``, so the file wins over RPCs (B8): every test
also checks that the file on disk says exactly what was last sent.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agent.adapters.tfserving import config_text
from agent.adapters.tfserving.client import GrpcServingControl
from agent.adapters.tfserving.wait import wait_for_versions
from agent.core.domain import ServedModel, VersionState
from agent.core.errors import LoadFailedError, ServingRejectedError
from testkit.savedmodels import build_half_plus_two, corrupt_savedmodel
from testkit.servers import ServerHandle


@pytest.fixture(autouse=True)
def file_matches_what_was_sent(control: GrpcServingControl) -> Iterator[None]:
    """After every test the config file is exactly the rendering of the config last applied (B8)."""
    yield
    assert control.config_file.read_text() == config_text.render(control.configured().values())


def test_apply_status_predict(control: GrpcServingControl, tmp_path: Path) -> None:
    """A new model is loaded by ReloadConfig (B12), shows AVAILABLE (B14), answers Predict cast to float32."""
    base = tmp_path / "hp"
    build_half_plus_two(base, 1)
    control.apply({"hp": ServedModel("hp", str(base), (1,))})
    assert [(s.version, s.state) for s in control.status("hp")] == [(1, VersionState.AVAILABLE)]
    out = control.predict("hp", {"x": np.array([1.0, 2.0, 5.0])}, version=1)
    assert out["y"].dtype == np.float32
    assert out["y"].tolist() == [2.5, 3.0, 4.5]
    signature = control.signature("hp", version=1)
    assert (signature.inputs["x"].dtype, signature.inputs["x"].shape) == (np.dtype(np.float32), (None,))


def test_label_safe_swap(control: GrpcServingControl, server: ServerHandle, tmp_path: Path) -> None:
    """B13 two-step swap: serve {1, 2} with the label on 1, wait for 2, then move the label and drop 1."""
    base = tmp_path / "swap"
    build_half_plus_two(base, 1)
    build_half_plus_two(base, 2, b=3.0)
    control.apply({"swap": ServedModel("swap", str(base), (1,))})
    control.apply({"swap": ServedModel("swap", str(base), (1,), (("stable", 1),))})
    control.apply({"swap": ServedModel("swap", str(base), (1, 2), (("stable", 1),))})
    wait_for_versions(control, "swap", [2], timeout=60)
    assert server.predict("swap", [1.0], label="stable") == ([2.5], 1)
    control.apply({"swap": ServedModel("swap", str(base), (2,), (("stable", 2),))})
    assert server.predict("swap", [1.0], label="stable") == ([3.5], 2)
    assert control.predict("swap", {"x": np.array([1.0])}, label="stable")["y"].tolist() == [3.5]


def test_label_on_unloaded_version_is_refused(control: GrpcServingControl, tmp_path: Path) -> None:
    """B13: a label may only point at an AVAILABLE version; the file goes back to the last good config."""
    base = tmp_path / "lab"
    build_half_plus_two(base, 1)
    build_half_plus_two(base, 2)
    first = ServedModel("lab", str(base), (1,))
    control.apply({"lab": first})
    with pytest.raises(
        ServingRejectedError, match="FAILED_PRECONDITION: Request to assign label to version 2"
    ):
        control.apply({"lab": ServedModel("lab", str(base), (1, 2), (("stable", 2),))})
    assert control.configured()["lab"] == first
    assert first in config_text.parse(control.config_file.read_text())


def test_corrupt_new_model_is_a_load_failure(control: GrpcServingControl, tmp_path: Path) -> None:
    """B12/B14: a new model whose only version cannot load is LoadFailedError carrying TF Serving's error.

    ReloadConfig reports it (UNKNOWN) only if it saw the model first; when the file poller (B8) picked the
    new file up first, the RPC returns OK and only the END status tells: apply is always followed by a wait.
    """
    base = tmp_path / "bad"
    corrupt_savedmodel(build_half_plus_two(base, 1))

    def load() -> None:
        control.apply({"bad": ServedModel("bad", str(base), (1,))})
        wait_for_versions(control, "bad", [1], timeout=30)

    with pytest.raises(LoadFailedError, match="DATA_LOSS: Can't parse"):
        load()
    (status,) = control.status("bad")
    assert status.state is VersionState.END
    assert status.failed
    control.apply({"bad": None})


def test_incomplete_version_is_never_sent(
    control: GrpcServingControl, server: ServerHandle, tmp_path: Path
) -> None:
    """B12: a version directory without saved_model.pb is refused before TF Serving could hang on it."""
    (tmp_path / "half" / "1").mkdir(parents=True)
    with pytest.raises(ServingRejectedError, match="not a complete SavedModel"):
        control.apply({"half": ServedModel("half", str(tmp_path / "half"), (1,))})
    assert server.status("half") == {}
    assert "half" not in control.configured()


def test_unknown_model_and_label(control: GrpcServingControl) -> None:
    """B15/B16: a never-seen model has no status; Predict errors are ServingRejectedError with TF's text."""
    assert control.status("never-seen") == ()
    with pytest.raises(ServingRejectedError, match="NOT_FOUND"):
        control.predict("never-seen", {"x": np.zeros(1)})
