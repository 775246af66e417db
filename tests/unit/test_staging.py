"""Staging: a version reaches ``<local_path>/<N>`` complete and verified, or no integer directory appears."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.adapters.sources.retrying import Retry, retry_policy
from agent.core.domain import MANIFEST_NAME, FileEntry, Manifest
from agent.core.errors import (
    ChecksumMismatchError,
    DiskSpaceError,
    ManifestError,
    PermanentSourceError,
    TransientSourceError,
    UnsafePathError,
)
from agent.pipeline.staging import check_local, stage_version, verify_local
from testkit.fakes_sources import InMemorySource

FILES = {
    "saved_model.pb": b"graph" * 100,
    "variables/variables.index": b"index",
    "variables/variables.data-00000-of-00001": b"w" * 4096,
    "assets/vocab.txt": b"a\nb\n",
}


def fast_retry(timeout: float = 5.0) -> Retry:
    """The production predicate with millisecond backoff, so retry tests take no real time."""
    return retry_policy(initial=0.001, maximum=0.002, deadline=timeout)


def _entries(local: Path) -> set[str]:
    return {p.name for p in local.iterdir()}


def test_stages_a_version_verified_and_renamed(tmp_path: Path) -> None:
    """All files land under <local_path>/<N> with the manifest, and nothing else is left behind."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    staged = stage_version(source, manifest, tmp_path / "m", retry=fast_retry())
    assert staged.path == tmp_path / "m" / "5"
    assert staged.bytes == manifest.total_bytes
    assert not staged.reused
    for name, data in FILES.items():
        assert (staged.path / name).read_bytes() == data
    assert (staged.path / MANIFEST_NAME).is_file()
    assert _entries(tmp_path / "m") == {"5"}
    assert verify_local(tmp_path / "m", 5)


def test_a_verified_copy_on_disk_is_reused_without_downloading(tmp_path: Path) -> None:
    """Staging a version that is already there and verifies downloads nothing."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    stage_version(source, manifest, tmp_path, retry=fast_retry())
    source.calls.clear()
    staged = stage_version(source, manifest, tmp_path, retry=fast_retry())
    assert staged.reused
    assert source.calls["download"] == 0


def test_an_unverified_directory_in_the_way_is_replaced(tmp_path: Path) -> None:
    """A stray or damaged <N> directory is replaced by a verified copy."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "saved_model.pb").write_bytes(b"stale")
    stage_version(source, manifest, tmp_path, retry=fast_retry())
    assert verify_local(tmp_path, 5)
    assert _entries(tmp_path) == {"5"}


def test_an_object_corrupted_after_publishing_is_rejected_and_nothing_renamed(tmp_path: Path) -> None:
    """If the bucket's bytes no longer match the manifest, staging fails naming the object."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    source.put(5, "variables/variables.index", b"INDEX")
    with pytest.raises(ChecksumMismatchError, match=r"variables/variables\.index.*publish a new version"):
        stage_version(source, manifest, tmp_path, retry=fast_retry())
    assert _entries(tmp_path) == set()
    assert source.calls["download"] == 0


def test_bytes_that_change_in_flight_fail_the_crc32c_check(tmp_path: Path) -> None:
    """The crc32c computed while streaming must match the manifest, whatever the listing said."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    source.corrupt_downloads["saved_model.pb"] = b"GRAPH" * 100
    with pytest.raises(ChecksumMismatchError, match=r"saved_model\.pb: crc32c"):
        stage_version(source, manifest, tmp_path, retry=fast_retry())
    assert _entries(tmp_path) == set()


def test_a_file_the_bucket_lacks_fails_with_a_manifest_error(tmp_path: Path) -> None:
    """A manifest listing an object that is not in the bucket fails before any download."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    del source.objects[(5, "assets/vocab.txt")]
    with pytest.raises(ManifestError, match=r"assets/vocab\.txt, which the bucket lacks"):
        stage_version(source, manifest, tmp_path, retry=fast_retry())
    assert _entries(tmp_path) == set()


def test_transient_errors_are_retried_until_the_download_succeeds(tmp_path: Path) -> None:
    """Two 503s on one file are retried; the version still stages."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    source.fail("download", "saved_model.pb", TransientSourceError("503"), TransientSourceError("reset"))
    stage_version(source, manifest, tmp_path, retry=fast_retry())
    assert verify_local(tmp_path, 5)
    assert source.calls["download"] == len(FILES) + 2


def test_retrying_gives_up_at_the_deadline_as_a_transient_error(tmp_path: Path) -> None:
    """A source that never recovers fails the attempt with TransientSourceError once the deadline passes."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    source.fail("download", "assets/vocab.txt", *[TransientSourceError("503")] * 10_000)
    with pytest.raises(TransientSourceError, match=r"assets/vocab\.txt: still failing"):
        stage_version(source, manifest, tmp_path, retry=fast_retry(timeout=0.05))
    assert _entries(tmp_path) == set()


def test_permanent_errors_fail_at_once(tmp_path: Path) -> None:
    """A 403 is not retried: one attempt, then the candidate fails with the reason."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    source.fail("download", "saved_model.pb", PermanentSourceError("HTTP 403"))
    with pytest.raises(PermanentSourceError, match="403"):
        stage_version(source, manifest, tmp_path, concurrency=1, retry=fast_retry())
    assert source.calls_by_name[("download", "saved_model.pb")] == 1
    assert _entries(tmp_path) == set()


def test_hostile_names_are_refused_and_nothing_is_written_outside(tmp_path: Path) -> None:
    """A manifest built around the parser with '../' names fails with UnsafePathError; no file escapes."""
    source = InMemorySource()
    source.publish(5, FILES)
    source.put(5, "../../escape", b"evil")
    bad = Manifest("model", 5, (FileEntry("../../escape", 4, "AAAAAA=="),))
    local = tmp_path / "volume" / "m"
    with pytest.raises(UnsafePathError, match=r"'\.\./\.\./escape'"):
        stage_version(source, bad, local, retry=fast_retry())
    assert list(tmp_path.rglob("*")) == []


def test_free_space_is_checked_before_downloading(tmp_path: Path) -> None:
    """Not enough room for the version plus headroom is a DiskSpaceError and downloads nothing."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    with pytest.raises(DiskSpaceError, match=r"needs .* MiB plus .* headroom"):
        stage_version(source, manifest, tmp_path, retry=fast_retry(), reserve_bytes=2**62)
    assert source.calls["download"] == 0


def test_downloads_run_in_parallel_but_bounded(tmp_path: Path) -> None:
    """No more than ``concurrency`` downloads are ever in flight."""
    source = InMemorySource()
    manifest = source.publish(5, {f"shard-{i}": bytes([i]) * 1000 for i in range(40)})
    progress: list[str] = []
    stage_version(
        source,
        manifest,
        tmp_path,
        concurrency=3,
        retry=fast_retry(),
        progress=lambda p, n: progress.append(p),
    )
    assert 1 <= source.max_in_flight <= 3
    assert sorted(progress) == sorted(f.path for f in manifest.files)


def test_check_local_names_what_is_wrong(tmp_path: Path) -> None:
    """A changed size, a changed byte and a missing manifest each make verification fail with a reason."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    stage_version(source, manifest, tmp_path, retry=fast_retry())
    data = tmp_path / "5" / "variables" / "variables.index"
    data.write_bytes(b"INDEX")
    assert "crc32c" in (check_local(tmp_path, 5) or "")
    assert verify_local(tmp_path, 5, checksums=False)
    data.write_bytes(b"short")
    data.write_bytes(b"shrt")
    assert "has 4 bytes" in (check_local(tmp_path, 5) or "")
    os.remove(tmp_path / "5" / MANIFEST_NAME)
    assert "no readable manifest" in (check_local(tmp_path, 5) or "")
    assert not verify_local(tmp_path, 6)


def test_extra_files_in_a_staged_version_are_allowed(tmp_path: Path) -> None:
    """Warmup data the agent adds after staging does not break verification."""
    source = InMemorySource()
    manifest = source.publish(5, FILES)
    stage_version(source, manifest, tmp_path, retry=fast_retry())
    (tmp_path / "5" / "assets.extra").mkdir()
    (tmp_path / "5" / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"warm")
    assert verify_local(tmp_path, 5)
