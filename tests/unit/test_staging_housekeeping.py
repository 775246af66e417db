"""Housekeeping on the volume: crash leftovers removed at start, old versions pruned, protected ones kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.pipeline.staging import clean_staging, local_versions, prune_versions


def _mkdirs(root: Path, *names: str) -> None:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "saved_model.pb").write_bytes(b"g")


def test_clean_staging_removes_only_leftover_dot_directories(tmp_path: Path) -> None:
    """.staging-* and .removing-* directories go; versions and unrelated files stay."""
    _mkdirs(tmp_path, ".staging-3-ab12cd34", ".removing-1-0011aabb", "2", ".tfs-agent")
    (tmp_path / ".staging-note").write_text("a file, not a leftover dir")
    removed = clean_staging(tmp_path)
    assert sorted(p.name for p in removed) == [".removing-1-0011aabb", ".staging-3-ab12cd34"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging-note", ".tfs-agent", "2"]


def test_clean_staging_on_a_missing_directory_is_a_no_op(tmp_path: Path) -> None:
    """A fresh volume has nothing to clean."""
    assert clean_staging(tmp_path / "absent") == []


def test_local_versions_are_canonical_integer_directories(tmp_path: Path) -> None:
    """Only the names staging writes count as versions."""
    _mkdirs(tmp_path, "1", "10", "007", "v2", ".staging-4-aa")
    (tmp_path / "5").write_text("a file")
    assert local_versions(tmp_path) == {1, 10}


def test_prune_keeps_the_newest_and_every_protected_version(tmp_path: Path) -> None:
    """With keep=2 and 3 protected (serving, rollback), the oldest unprotected versions are removed."""
    _mkdirs(tmp_path, "1", "2", "3", "4", "5")
    removed = prune_versions(tmp_path, protect={3}, keep=2)
    assert removed == [1, 2, 4]
    assert local_versions(tmp_path) == {3, 5}


def test_prune_never_removes_protected_versions_even_beyond_keep(tmp_path: Path) -> None:
    """Protected versions survive even when they alone exceed keep."""
    _mkdirs(tmp_path, "1", "2", "3")
    assert prune_versions(tmp_path, protect={1, 2}, keep=1) == [3]
    assert local_versions(tmp_path) == {1, 2}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_prune_rejects_keep_below_one(tmp_path: Path) -> None:
    """keep=0 would delete the serving version: refused."""
    with pytest.raises(ValueError, match="keep"):
        prune_versions(tmp_path, protect=(), keep=0)
