"""The file-system source in-process: version names, policies, polling rules (B3, B4, B7, B12).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfs_devserver.source import FileSystemSource, ServableToMonitor, aspired_versions, parse_version
from tfs_devserver.status import ServingError


@pytest.mark.parametrize(
    ("child", "version"),
    [
        ("1", 1),
        ("007", 7),
        ("-3", -3),
        ("+4", 4),
        ("9223372036854775807", 2**63 - 1),
        ("9223372036854775808", None),
        ("v1", None),
        ("1.5", None),
        (".staging-7", None),
        ("1_000", None),
        ("", None),
        ("0x10", None),
    ],
)
def test_parse_version(child: str, version: int | None) -> None:
    """B3: a child is a version only if its name is a signed 64-bit integer."""
    assert parse_version(child) == version


def _servable(base: Path, policy: str = "") -> ServableToMonitor:
    config = model_server_config_pb2.ModelConfig()
    text_format.Parse(policy, config.model_version_policy)
    return ServableToMonitor("m", str(base), config.model_version_policy)


def _versions(tmp_path: Path, *names: str) -> Path:
    for name in names:
        (tmp_path / name).mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("", {3}),
        ("latest { num_versions: 0 }", {3}),
        ("latest { num_versions: 2 }", {2, 3}),
        ("all {}", {1, 2, 3}),
        ("specific { versions: 1 versions: 3 versions: 9 }", {1, 3}),
    ],
)
def test_policies(tmp_path: Path, policy: str, expected: set[int]) -> None:
    """B4: latest N (0 means 1), all, specific (missing versions skipped)."""
    base = _versions(tmp_path, "1", "2", "003", "v4", ".staging-5")
    assert set(aspired_versions(_servable(base, policy))) == expected


def test_specific_missing_version_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """B4: a specific version that does not exist is a warning, not an error."""
    base = _versions(tmp_path, "1")
    assert aspired_versions(_servable(base, "specific { versions: 1 versions: 2 }")) == {1: str(base / "1")}
    assert "Version 2 of servable m" in caplog.text


def test_missing_base_path_fails_the_whole_poll(tmp_path: Path) -> None:
    """B12: one missing base path means no model is updated that poll."""
    emitted: list[tuple[str, dict[int, str]]] = []
    source = FileSystemSource(emit=lambda n, v: emitted.append((n, v)), poll_wait_seconds=-1)
    (tmp_path / "good").mkdir()
    good = _servable(_versions(tmp_path / "good", "1"))
    missing = ServableToMonitor("late", str(tmp_path / "nope"), good.policy)
    source.update_config([good, missing])
    assert not source.poll_once()
    assert emitted == []
    with pytest.raises(ServingError, match="Could not find base path"):
        aspired_versions(missing)
    (tmp_path / "nope").mkdir()
    assert source.poll_once()
    assert emitted == [("m", {1: str(tmp_path / "good" / "1")}), ("late", {})]


def test_removed_model_is_unaspired_at_once(tmp_path: Path) -> None:
    """B11: a model removed from the config gets an empty aspired list immediately."""
    emitted: list[tuple[str, dict[int, str]]] = []
    source = FileSystemSource(emit=lambda n, v: emitted.append((n, v)), poll_wait_seconds=-1)
    source.update_config([_servable(_versions(tmp_path, "1"))])
    source.update_config([])
    assert emitted == [("m", {})]


@pytest.mark.parametrize(("interval", "polls"), [(-1, 0), (0, 1)])
def test_poll_interval_zero_polls_once_negative_never(tmp_path: Path, interval: int, polls: int) -> None:
    """B7: an interval of 0 polls once at start, a negative one never."""
    emitted: list[str] = []
    source = FileSystemSource(emit=lambda n, v: emitted.append(n), poll_wait_seconds=interval)
    source.update_config([_servable(_versions(tmp_path, "1"))])
    source.start()
    source.start()
    assert len(emitted) == polls
