"""The state file: atomic, round-trips every field, refuses what it cannot read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.core.errors import AgentError
from agent.infra.files import write_atomic
from agent.infra.state import Pending, StateStore

SCORE = {"version": 3, "metrics": {"accuracy": 0.9}, "generation": "17", "scored_at": 5.0}


def test_round_trip(tmp_path: Path) -> None:
    """Everything recorded survives a reload, including quarantine keys and the pending step."""
    store = StateStore(tmp_path)
    with store.update("m") as rec:
        rec.serving, rec.previous, rec.pinned = 3, 2, None
        rec.quarantined[4] = "validation: mismatch"
        rec.pending = Pending(5, 3, "load", 12.5)
        rec.serving_score = SCORE
        rec.golden_generation = "17"
    again = StateStore(tmp_path).get("m")
    assert (again.serving, again.previous, again.quarantined) == (3, 2, {4: "validation: mismatch"})
    assert again.pending == Pending(5, 3, "load", 12.5)
    assert again.serving_score == {
        "version": 3,
        "metrics": {"accuracy": 0.9},
        "generation": "17",
        "scored_at": 5.0,
    }
    assert again.golden_generation == "17"


def test_failed_update_is_not_saved(tmp_path: Path) -> None:
    """A block that raises does not persist its half-made change."""
    store = StateStore(tmp_path)
    with store.update("m") as rec:
        rec.serving = 1

    def fail_midway() -> None:
        with store.update("m") as rec:
            rec.serving = 2
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert store.get("m").serving == 1
    assert json.loads((tmp_path / "state.json").read_text())["models"]["m"]["serving"] == 1


def test_corrupt_state_names_the_fix(tmp_path: Path) -> None:
    """An unreadable state file is an error that names the file and what to do."""
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(AgentError, match="move it aside"):
        StateStore(tmp_path)


def test_write_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    """write_atomic replaces the file and leaves nothing else behind."""
    target = tmp_path / "f.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_failed_save_leaves_memory_as_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the file cannot be written (disk full), the in-memory record keeps its old value too."""
    store = StateStore(tmp_path)
    with store.update("m") as rec:
        rec.serving = 1

    def full(self: StateStore) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(StateStore, "save", full)
    with pytest.raises(OSError, match="No space"), store.update("m") as rec:
        rec.serving = 2
    assert store.get("m").serving == 1
