"""The volume preflight: what the agent's directories hold plus the candidate, against local_volume_limit,
before any byte is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.core.errors import DiskSpaceError
from agent.pipeline.staging import stage_version
from agent.pipeline.volume import VOLUME_HEADROOM_BYTES, VolumeLimit, volume_usage
from testkit.fakes_sources import InMemorySource
from testkit.threads import held_elsewhere
from tests.unit.test_staging import FILES, fast_retry

MIB = 2**20


def fill(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\1" * size)
    return path


def test_usage_counts_versions_staging_and_removing_dirs(tmp_path: Path) -> None:
    """Every file under the paths counts, dot-directories too; a symlink's target does not; missing is 0."""
    fill(tmp_path / "a" / "1" / "w", MIB)
    fill(tmp_path / "a" / ".staging-2-abcd" / "w", 2 * MIB)
    fill(tmp_path / "b" / ".removing-1-ef01" / "w", 3 * MIB)
    fill(tmp_path / "elsewhere" / "big", 8 * MIB)
    os.symlink(tmp_path / "elsewhere", tmp_path / "a" / "link")
    used = volume_usage([tmp_path / "a", tmp_path / "b", tmp_path / "missing"])
    assert 6 * MIB <= used < 6 * MIB + 64 * 1024  # files plus a few directory blocks


def test_nested_paths_are_counted_once(tmp_path: Path) -> None:
    """A state_dir inside a model's local_path (or the same path twice) is not counted twice."""
    fill(tmp_path / "m" / "1" / "w", MIB)
    limit = VolumeLimit(100 * MIB, [tmp_path / "m", tmp_path / "m" / ".tfs-agent", tmp_path / "m"])
    assert limit.paths == (tmp_path / "m",)


def test_a_version_over_the_limit_is_refused_before_any_download(tmp_path: Path) -> None:
    """What is on the volume (other models included) plus the version over the limit: DiskSpaceError saying
    what to change; nothing downloaded, no staging directory."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    fill(tmp_path / "other" / "3" / "w", 2 * MIB)
    volume = VolumeLimit(2 * MIB, [tmp_path / "m", tmp_path / "other"])
    with pytest.raises(DiskSpaceError) as err:
        stage_version(source, manifest, tmp_path / "m", retry=fast_retry(), volume=volume)
    assert "already holds 2.0 MiB of serving.local_volume_limit 2.0 MiB" in err.value.reason
    assert "lower keep_versions, or raise the models emptyDir's sizeLimit and serving.local_volume_limit" in (
        err.value.reason
    )
    assert err.value.retryable
    assert source.calls["download"] == 0
    assert list((tmp_path / "m").iterdir()) == []


def test_a_version_that_fits_is_staged(tmp_path: Path) -> None:
    """Under the limit, with headroom, staging goes ahead; the reservation is released afterwards."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    volume = VolumeLimit(manifest.total_bytes + VOLUME_HEADROOM_BYTES + 64 * 1024, [tmp_path / "m"])
    assert stage_version(source, manifest, tmp_path / "m", retry=fast_retry(), volume=volume).bytes
    assert volume._reserved == {}


def test_a_download_in_flight_counts_for_the_next_model(tmp_path: Path) -> None:
    """Two models staging at once: the second sees the first's whole size reserved and is refused."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    volume = VolumeLimit(manifest.total_bytes * 2 + VOLUME_HEADROOM_BYTES, [tmp_path])
    with held_elsewhere(volume.reserve(manifest, tmp_path / "a")):
        bigger = source.publish(6, {"big": b"x" * (manifest.total_bytes + 1)})
        with pytest.raises(DiskSpaceError, match=r"being downloaded"), volume.reserve(bigger, tmp_path):
            pass
    with volume.reserve(manifest, tmp_path / "b"):
        pass
