"""``tfs-agent fleet ...`` as a process against a real bucket: fake-gcs-server and file://.

The CLI reads and writes the fleet's records itself; these tests check the records it leaves in the bucket
(read back through the store adapters) and the refusals it prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.adapters.sources.base import CREATE_ONLY, ModelSink, RecordStore
from agent.adapters.sources.gcs import GcsSink
from agent.adapters.sources.gcs_records import GcsRecordStore
from agent.adapters.sources.local import LocalSink
from agent.adapters.sources.local_records import LocalRecordStore
from agent.core.domain import MANIFEST_NAME
from agent.core.fleet_records import RELEASE_NAME, Phase, Release, Verdict, decode, encode, verdict_name
from agent.core.manifest import serialize_manifest
from agent.fleet import fleet_uri
from testkit.fakes_sources import manifest_for
from testkit.gcs import FakeGcsServer, new_bucket

FILES = {"saved_model.pb": b"graph", "variables/variables.index": b"idx"}


@dataclass
class Bucket:
    """A model's bucket prefix, its fleet store, and how to run the CLI against it."""

    source: str
    sink: ModelSink
    store: RecordStore
    config: Path
    env: dict[str, str]

    def publish(self, version: int, *, complete: bool = True) -> None:
        for name, data in FILES.items():
            self.sink.write_bytes(f"{version}/{name}", data)
        if complete:
            manifest = serialize_manifest(manifest_for("m", version, FILES))
            self.sink.write_bytes(f"{version}/{MANIFEST_NAME}", manifest)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent", "fleet", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )

    def release(self) -> Release:
        record = self.store.read(RELEASE_NAME)
        assert record is not None
        return decode(Release, record.data, origin=RELEASE_NAME)


@pytest.fixture(params=["file", "gcs"])
def bucket(request: pytest.FixtureRequest, tmp_path: Path) -> Bucket:
    """An empty model prefix in a file:// or gs:// bucket, and an agent config naming it in fleet prod."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFS_AGENT_")}
    if request.param == "file":
        source = f"file://{tmp_path}/bucket/m"
        sink: ModelSink = LocalSink.from_uri(source)
        store: RecordStore = LocalRecordStore.from_uri(fleet_uri(source, "prod"))
    else:
        server: FakeGcsServer = request.getfixturevalue("gcs_emulator")
        client = server.client()
        source = f"gs://{new_bucket(client)}/models/m"
        sink, store = GcsSink(source, client=client), GcsRecordStore(fleet_uri(source, "prod"), client=client)
        env["STORAGE_EMULATOR_HOST"] = server.url
    config = tmp_path / "agent.yaml"
    config.write_text(
        "fleet: {name: prod, id: pod-a}\n"
        f"models:\n  - name: m\n    source: {source}\n    local_path: {tmp_path}/volume/m\n"
    )
    return Bucket(source, sink, store, config, env)


def test_status_of_a_fleet_with_no_release(bucket: Bucket) -> None:
    """An untouched fleet: status says so, in text and as JSON."""
    text = bucket.cli("status")
    assert text.returncode == 0, text.stderr
    assert "m: no release yet" in text.stdout
    doc = json.loads(bucket.cli("status", "--json").stdout)
    assert doc["m"]["release"] is None
    assert doc["m"]["pods"] == []


def test_pin_refuses_a_missing_or_incomplete_version_and_changes_nothing(bucket: Bucket) -> None:
    """Pinning a version that is absent or has no manifest yet is refused with the reason."""
    bucket.publish(3, complete=False)
    missing = bucket.cli("pin", "m", "7")
    assert missing.returncode == 1
    assert "version 7 does not exist" in missing.stderr
    incomplete = bucket.cli("pin", "m", "3")
    assert incomplete.returncode == 1
    assert "version 3 is not complete in the bucket yet" in incomplete.stderr
    assert bucket.store.read(RELEASE_NAME) is None


def test_pin_abort_clear_and_pin_again(bucket: Bucket) -> None:
    """Pin starts a pinned release; abort rejects it fleet-wide; a rejected pin is refused; clear lifts it."""
    bucket.publish(2)
    pinned = bucket.cli("pin", "m", "2")
    assert pinned.returncode == 0, pinned.stderr
    release = bucket.release()
    assert (release.target, release.phase, release.pinned, release.revision) == (2, Phase.VALIDATING, True, 1)
    aborted = bucket.cli("abort", "m")
    assert aborted.returncode == 0, aborted.stderr
    assert bucket.release().phase is Phase.ABORTED
    verdict = bucket.store.read(verdict_name(2))
    assert verdict is not None
    assert decode(Verdict, verdict.data, origin="v").stage == "operator"
    refused = bucket.cli("pin", "m", "2")
    assert refused.returncode == 1
    assert "rejected (operator: operator abort)" in refused.stderr
    assert bucket.cli("clear", "m", "2").returncode == 0
    assert bucket.store.read(verdict_name(2)) is None
    assert bucket.cli("pin", "m", "2").returncode == 0
    assert bucket.release().revision == 2
    again = bucket.cli("abort", "m")
    assert again.returncode == 0
    assert "nothing to abort" in bucket.cli("abort", "m").stderr


def test_rollback_rejects_the_target_and_rolls_to_the_previous(bucket: Bucket) -> None:
    """After a done release 1 → 2, rollback rejects 2 and starts a rolling release back to 1."""
    done = Release(4, 2, 1, Phase.DONE, "all arrived", "pod-a", 0.0)
    bucket.store.write(RELEASE_NAME, encode(done), expect=CREATE_ONLY)
    result = bucket.cli("rollback", "m")
    assert result.returncode == 0, result.stderr
    release = bucket.release()
    assert (release.revision, release.target, release.phase) == (5, 1, Phase.ROLLING)
    assert bucket.store.read(verdict_name(2)) is not None
    status = bucket.cli("status").stdout
    assert "release 5 → 1" in status
    assert "rejected 2: operator: operator rollback" in status


def test_status_names_an_unparseable_record_and_pin_replaces_it_by_cas(bucket: Bucket) -> None:
    """A truncated release.json is shown as a problem by name; an operator's pin overwrites exactly it."""
    bucket.store.write(RELEASE_NAME, b'{"format": 1, "ki', expect=CREATE_ONLY)
    bucket.store.write("ledger/pod-b.json", b"not json", expect=CREATE_ONLY)
    status = bucket.cli("status")
    assert status.returncode == 0, status.stderr
    assert "PROBLEM release.json: not valid UTF-8 JSON" in status.stdout
    assert "PROBLEM ledger/pod-b.json" in status.stdout
    refused = bucket.cli("rollback", "m")
    assert refused.returncode == 1
    assert "release.json: not valid UTF-8 JSON" in refused.stderr
    bucket.publish(5)
    assert bucket.cli("pin", "m", "5").returncode == 0
    assert bucket.release().target == 5


def test_fleet_commands_need_a_fleet_name(bucket: Bucket, tmp_path: Path) -> None:
    """Without a fleet: block or --fleet the CLI refuses with the fix (exit 2)."""
    config = tmp_path / "single.yaml"
    config.write_text(bucket.config.read_text().replace("fleet: {name: prod, id: pod-a}\n", ""))
    result = subprocess.run(
        [sys.executable, "-m", "agent", "fleet", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        env=bucket.env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no fleet: block" in result.stderr
