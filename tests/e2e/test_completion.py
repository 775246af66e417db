"""The completion modes for buckets filled by other tools, shown by the agent as a process: `quiet:` waits for
a listing that stopped changing (whatever mtimes the copy kept), `marker:` for the marker object."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.savedmodels import build_half_plus_two
from testkit.stack import Stack

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    made = Stack(tmp_path, completion="quiet:6s")
    made.add_model("marked", completion="marker:_SUCCESS", golden=None)  # checked by load + zeros Predict
    yield made
    made.close()


def _copy_keeping_old_mtimes(src: Path, dst: Path, names: list[str]) -> None:
    """What `cp -p`, `rsync -a` or `tar` do: the bytes arrive now, the mtimes stay an hour old."""
    old = time.time() - 3600
    for name in names:
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / name, target)
        os.utime(target, (old, old))


def _files(version_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(version_dir)) for p in version_dir.rglob("*") if p.is_file())


def test_quiet_and_marker_wait_for_the_whole_version(stack: Stack, tmp_path: Path) -> None:
    """`quiet:6s` does not take a half-copied version with old mtimes for a quiet one; `marker:_SUCCESS`
    ignores a fully copied version until the marker appears; both versions are then promoted (the marked
    one with no golden file: the load and a Predict of zeros are its check)."""
    stack.start()
    built = build_half_plus_two(tmp_path / "build", 1)
    files = _files(built)
    quiet, marked = stack.bucket_dir() / "1", stack.bucket_dir("marked") / "1"
    _copy_keeping_old_mtimes(built, quiet, ["saved_model.pb"])  # the copy has only begun
    _copy_keeping_old_mtimes(built, marked, files)  # complete, but no marker yet
    stack.wait_passes(2)  # seen half-copied (well within the quiet period)...
    _copy_keeping_old_mtimes(built, quiet, [f for f in files if f != "saved_model.pb"])  # ...then finished
    stack.wait_passes(2, model="marked")
    assert stack.model("marked")["serving"] is None
    assert not (stack.volume / "marked" / "1").exists()
    (marked / "_SUCCESS").write_bytes(b"")
    stack.wait_serving(1, model="marked")
    promoted = stack.wait_serving(1)
    assert promoted["quarantined"] == {}
    assert not (stack.volume / "marked" / "1" / "_SUCCESS").exists()
