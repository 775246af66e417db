"""publish → discover → stage, and the bucket faults, on every scheme: file://, gs:// (fake-gcs-server),
s3:// (moto) and az:// (Azurite).

Every test runs once per scheme with the real adapters against the real emulator: what the agent promises
must not depend on where the bucket lives.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from agent.adapters.sources.base import ModelSink, ModelSource
from agent.adapters.sources.retrying import retry_policy
from agent.core.domain import MANIFEST_NAME
from agent.core.errors import ChecksumMismatchError
from agent.infra.clock import ManualClock
from agent.infra.config_policy import parse_completion
from agent.pipeline.discovery import Discovery
from agent.pipeline.staging import stage_version, verify_local
from agent.service.publish import PublishError, publish
from testkit.savedmodels import build_half_plus_two
from testkit.stores import Store

FAST = retry_policy(initial=0.001, maximum=0.01, deadline=5)


@dataclass
class Bucket:
    """A model prefix in one kind of bucket, with its reader, writer and a raw put that skips name checks."""

    scheme: str
    uri: str
    source: ModelSource
    sink: ModelSink
    put: Callable[[str, bytes], None]


@pytest.fixture
def bucket(store: Store) -> Bucket:
    uri = store.new_uri("half_plus_two")
    put = partial(store.put, uri)
    return Bucket(store.scheme, uri, store.source(uri), store.sink(uri), put)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real half_plus_two SavedModel exported by TensorFlow (y = 0.5 * x + 2)."""
    return build_half_plus_two(tmp_path_factory.mktemp("export"), 1)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_publish_then_discover_then_stage(bucket: Bucket, saved_model: Path, tmp_path: Path) -> None:
    """A published version is discovered complete and staged as a byte-identical, verified copy."""
    manifest = publish(saved_model, bucket.uri, 3, progress=False, sink=bucket.sink)
    found = Discovery(bucket.source, parse_completion("manifest"), model="half_plus_two").poll()
    assert dict(found.complete) == {3: manifest}
    local = tmp_path / "volume" / "half_plus_two"
    staged = stage_version(bucket.source, manifest, local, retry=FAST)
    copied = _files(staged.path)
    assert copied.pop(MANIFEST_NAME)
    assert copied == _files(saved_model)
    assert verify_local(local, 3)
    assert _predict(staged.path, [1.0, 4.0]) == [2.5, 4.0]


def _predict(path: Path, xs: list[float]) -> list[float]:
    """Run the staged copy's serving signature with TensorFlow: the copy is a loadable SavedModel."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return [float(v) for v in serve(x=tf.constant(xs, tf.float32))["y"].numpy()]


def test_publish_refuses_to_overwrite_a_complete_version(bucket: Bucket, saved_model: Path) -> None:
    """Publishing an existing complete version fails unless forced."""
    publish(saved_model, bucket.uri, 1, progress=False, sink=bucket.sink)
    with pytest.raises(PublishError, match="already a complete version"):
        publish(saved_model, bucket.uri, 1, progress=False, sink=bucket.sink)
    again = publish(saved_model, bucket.uri, 1, progress=False, sink=bucket.sink, force=True)
    assert again.version == 1


def test_a_version_without_a_manifest_is_ignored(bucket: Bucket, tmp_path: Path) -> None:
    """Files without a manifest make an incomplete version that is never offered for staging."""
    bucket.put("2/saved_model.pb", b"half an upload")
    found = Discovery(bucket.source, parse_completion("manifest")).poll()
    assert found.incomplete == {2}
    assert not found.complete


def test_an_object_corrupted_after_the_manifest_is_rejected(
    bucket: Bucket, saved_model: Path, tmp_path: Path
) -> None:
    """Overwriting a file after publishing fails staging, and no integer directory appears."""
    manifest = publish(saved_model, bucket.uri, 4, progress=False, sink=bucket.sink)
    bucket.put("4/variables/variables.index", b"INDEX")
    local = tmp_path / "volume"
    with pytest.raises(ChecksumMismatchError, match=r"variables/variables\.index"):
        stage_version(bucket.source, manifest, local, retry=FAST)
    assert list(local.iterdir()) == []


def test_marker_mode_bucket(bucket: Bucket, saved_model: Path, tmp_path: Path) -> None:
    """With marker:_SUCCESS the version is complete once the marker exists, and stages verified."""
    for name, data in _files(saved_model).items():
        bucket.put(f"5/{name}", data)
    discovery = Discovery(bucket.source, parse_completion("marker:_SUCCESS"))
    assert discovery.poll().incomplete == {5}
    bucket.put("5/_SUCCESS", b"")
    manifest = discovery.poll().complete[5]
    staged = stage_version(bucket.source, manifest, tmp_path / "v", retry=FAST)
    assert not (staged.path / "_SUCCESS").exists()
    assert verify_local(tmp_path / "v", 5)


def test_quiet_mode_bucket(bucket: Bucket, saved_model: Path, tmp_path: Path) -> None:
    """With quiet:60s the version is complete once its listing stayed unchanged for 60 s (fake clock)."""
    clock = ManualClock(time.time() + 5)
    for name, data in _files(saved_model).items():
        bucket.put(f"6/{name}", data)
    discovery = Discovery(bucket.source, parse_completion("quiet:60s"), clock=clock)
    assert discovery.poll().incomplete == {6}
    clock.advance(61)
    manifest = discovery.poll().complete[6]
    stage_version(bucket.source, manifest, tmp_path / "v", retry=FAST)
    assert verify_local(tmp_path / "v", 6)


# Names a store will not hold at all, so the agent can never see them there: moto answers 404 to a key with
# a newline (real S3 stores it). The test checks the refusal, so it fails if the emulator changes.
REFUSED = {("s3", "new\nline")}
# Azure (and Azurite) store a backslash in a blob name as '/': the name the agent sees then has '..' segments.
STORED_AS = {"az": lambda name: name.replace("\\", "/")}


@pytest.mark.parametrize("hostile", ["a\\..\\..\\escape", "new\nline"])
def test_hostile_object_names_fail_the_version(bucket: Bucket, tmp_path: Path, hostile: str) -> None:
    """An object name with a backslash, '..' or a control character makes the version invalid, naming it."""
    bucket.put("7/saved_model.pb", b"graph")
    bucket.put("7/_SUCCESS", b"")
    if (bucket.scheme, hostile) in REFUSED:
        with pytest.raises(Exception, match="404"):
            bucket.put(f"7/{hostile}", b"evil")
        return
    bucket.put(f"7/{hostile}", b"evil")
    found = Discovery(bucket.source, parse_completion("marker:_SUCCESS")).poll()
    stored = STORED_AS.get(bucket.scheme, str)(hostile)
    assert f"refusing object {stored!r}" in found.invalid[7]
    assert not found.complete


def test_uploads_report_their_bytes_as_they_go(bucket: Bucket, tmp_path: Path) -> None:
    """The sink tells the progress callback every byte it sends, also past the 8 MiB resumable threshold."""
    big = tmp_path / "big"
    big.write_bytes(os.urandom(9 * 2**20))
    seen: list[int] = []
    bucket.sink.upload(big, "8/variables/big", on_bytes=seen.append)
    assert sum(seen) == big.stat().st_size
    assert [o.size for o in bucket.source.list_objects(8)] == [big.stat().st_size]
