"""The ``RecordStore`` contract against every adapter: in memory, file://, gs:// (fake-gcs-server), s3://
(moto) and az:// (Azurite).

The emulator-only tests at the end show that fake-gcs-server itself refuses a stale or create-only write
(so the gs:// contract tests cannot pass by accident) and that it does *not* check a delete's precondition
(why the fleet protocol never relies on one).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import pytest
from azure.core import MatchConditions
from azure.core import exceptions as azure_exceptions
from google.api_core import exceptions as api_exceptions

from agent.adapters.sources.azure_records import AzureRecordStore
from agent.adapters.sources.base import CREATE_ONLY, RecordStore
from agent.adapters.sources.gcs import GcsSink, GcsSource
from agent.adapters.sources.gcs_records import GcsRecordStore
from agent.adapters.sources.local_records import LocalRecordStore
from agent.adapters.sources.memory import MemoryRecordStore
from agent.adapters.sources.s3_records import S3RecordStore
from agent.core.errors import PreconditionFailed, RateLimitedError
from agent.infra.clock import ManualClock
from testkit.emulators import Azurite, MotoServer
from testkit.gcs import FakeGcsServer, new_bucket, running_server
from testkit.stores import AzureStore, S3Store


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcsServer]:
    """One fake-gcs-server for the module."""
    with running_server(tmp_path_factory.mktemp("gcs")) as server:
        yield server


@pytest.fixture(params=["memory", "file", "gcs", "s3", "az"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RecordStore:
    """A fresh, empty store of each kind."""
    if request.param == "memory":
        return MemoryRecordStore(ManualClock())
    if request.param == "file":
        return LocalRecordStore(tmp_path / "bucket" / "m" / "_fleet" / "prod")
    if request.param == "s3":
        s3 = S3Store(request.getfixturevalue("moto"))
        return S3RecordStore(s3.new_uri("models/m") + "/_fleet/prod", client=s3.client)
    if request.param == "az":
        az = AzureStore(request.getfixturevalue("azurite"))
        return AzureRecordStore(az.new_uri("models/m") + "/_fleet/prod", az.service)
    server: FakeGcsServer = request.getfixturevalue("gcs")
    client = server.client()
    return GcsRecordStore(f"gs://{new_bucket(client)}/models/m/_fleet/prod", client=client)


def test_create_only_then_read_back(store: RecordStore) -> None:
    """A create-only write creates the record; read returns its bytes, its token and a store timestamp."""
    token = store.write("release.json", b'{"a": 1}', expect=CREATE_ONLY)
    record = store.read("release.json")
    assert record is not None
    assert (record.data, record.token, record.name) == (b'{"a": 1}', token, "release.json")
    assert record.updated > 0


def test_missing_record_reads_as_none(store: RecordStore) -> None:
    """Reading a record that does not exist is None, not an error."""
    assert store.read("slots/0.json") is None


def test_create_only_on_existing_record_is_refused(store: RecordStore) -> None:
    """A second create-only write loses with PreconditionFailed and leaves the first one's bytes."""
    store.write("verdicts/3.json", b"first", expect=CREATE_ONLY)
    with pytest.raises(PreconditionFailed):
        store.write("verdicts/3.json", b"second", expect=CREATE_ONLY)
    record = store.read("verdicts/3.json")
    assert record is not None
    assert record.data == b"first"


def test_stale_token_is_refused(store: RecordStore) -> None:
    """A write expecting a token that was since replaced loses and changes nothing."""
    first = store.write("slots/0.json", b"v1", expect=CREATE_ONLY)
    second = store.write("slots/0.json", b"v2", expect=first)
    assert second != first
    with pytest.raises(PreconditionFailed):
        store.write("slots/0.json", b"stale", expect=first)
    record = store.read("slots/0.json")
    assert record is not None
    assert (record.data, record.token) == (b"v2", second)


def test_cas_on_missing_record_is_refused(store: RecordStore) -> None:
    """Expecting a token of a record that does not exist (deleted meanwhile) loses too."""
    token = store.write("ledger/pod-a.json", b"x", expect=CREATE_ONLY)
    store.delete("ledger/pod-a.json", expect=token)
    with pytest.raises(PreconditionFailed):
        store.write("ledger/pod-a.json", b"y", expect=token)


def test_list_is_recursive_sorted_and_prefixed(store: RecordStore) -> None:
    """list(prefix) shows every record under the prefix with the token read would return."""
    for name in ("ledger/b.json", "ledger/a.json", "release.json"):
        store.write(name, b"{}", expect=CREATE_ONLY)
    listed = store.list("ledger/")
    assert [i.name for i in listed] == ["ledger/a.json", "ledger/b.json"]
    record = store.read("ledger/a.json")
    assert record is not None
    assert listed[0].token == record.token
    assert [i.name for i in store.list()] == ["ledger/a.json", "ledger/b.json", "release.json"]


def test_delete_of_missing_record_is_quiet(store: RecordStore) -> None:
    """Deleting what is already gone is not an error (two pods may prune one entry)."""
    store.delete("ledger/gone.json", expect="1")


def test_memory_store_refuses_a_second_mutation_within_the_interval() -> None:
    """With mutation_interval set, the in-memory store answers 429 like GCS and counts it."""
    clock = ManualClock()
    store = MemoryRecordStore(clock, mutation_interval=1.0)
    token = store.write("release.json", b"1", expect=CREATE_ONLY)
    with pytest.raises(RateLimitedError):
        store.write("release.json", b"2", expect=token)
    clock.advance(1.0)
    store.write("release.json", b"2", expect=token)
    assert store.rate_limited == 1


_RACER = """
import sys
from pathlib import Path
from agent.adapters.sources.base import CREATE_ONLY
from agent.adapters.sources.azure_records import AzureRecordStore
from agent.adapters.sources.local_records import LocalRecordStore
from agent.core.errors import PreconditionFailed
store = LocalRecordStore(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    while True:
        record = store.read("counter")
        try:
            if record is None:
                store.write("counter", b"1", expect=CREATE_ONLY)
            else:
                store.write("counter", str(int(record.data) + 1).encode(), expect=record.token)
            break
        except PreconditionFailed:
            continue
"""


def test_file_store_cas_is_atomic_across_processes(tmp_path: Path) -> None:
    """Four processes incrementing one file:// record by CAS (re-read on a lost race) lose no increment."""
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(tmp_path / "store"), "25"]) for _ in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    record = LocalRecordStore(tmp_path / "store").read("counter")
    assert record is not None
    assert record.data == b"100"


def _raw_blob(gcs: FakeGcsServer) -> tuple[object, int]:
    client = gcs.client()
    blob = client.bucket(new_bucket(client)).blob("x")
    blob.upload_from_string(b"one", if_generation_match=0)
    assert blob.generation is not None
    return blob, int(blob.generation)


def test_emulator_itself_refuses_a_stale_generation(gcs: FakeGcsServer) -> None:
    """fake-gcs-server answers 412 to a write whose ifGenerationMatch is stale (the library, no adapter)."""
    blob, first = _raw_blob(gcs)
    blob.upload_from_string(b"two", if_generation_match=first)  # type: ignore[attr-defined]
    with pytest.raises(api_exceptions.PreconditionFailed):
        blob.upload_from_string(b"three", if_generation_match=first)  # type: ignore[attr-defined]


def test_emulator_itself_refuses_create_only_on_an_existing_object(gcs: FakeGcsServer) -> None:
    """fake-gcs-server answers 412 to ifGenerationMatch=0 when the object exists."""
    blob, _ = _raw_blob(gcs)
    with pytest.raises(api_exceptions.PreconditionFailed):
        blob.upload_from_string(b"again", if_generation_match=0)  # type: ignore[attr-defined]


def test_emulator_does_not_check_a_deletes_precondition(gcs: FakeGcsServer) -> None:
    """fake-gcs-server deletes despite a wrong ifGenerationMatch (real GCS would 412): never rely on it."""
    blob, first = _raw_blob(gcs)
    blob.delete(if_generation_match=first + 12345)  # type: ignore[attr-defined]
    assert not blob.exists()  # type: ignore[attr-defined]


def test_gcs_discovery_ignores_the_fleet_folder(gcs: FakeGcsServer) -> None:
    """Records under gs://.../m/_fleet/ never show up as a version of m."""
    client = gcs.client()
    source = f"gs://{new_bucket(client)}/models/m"
    GcsSink(source, client=client).write_bytes("4/saved_model.pb", b"graph")
    store = GcsRecordStore(f"{source}/_fleet/prod", client=client)
    store.write("release.json", b"{}", expect=CREATE_ONLY)
    store.write("ledger/pod-a.json", b"{}", expect=CREATE_ONLY)
    assert GcsSource(source, client=client).list_versions() == frozenset({4})


def test_eight_writers_racing_to_create_one_record_exactly_one_wins(store: RecordStore) -> None:
    """Eight threads creating one slot at once: exactly one write wins, seven get PreconditionFailed."""
    barrier, outcomes = threading.Barrier(8), []
    lock = threading.Lock()

    def race(i: int) -> None:
        barrier.wait()
        try:
            store.write("slots/0.json", f"pod-{i}".encode(), expect=CREATE_ONLY)
            won = True
        except PreconditionFailed:
            won = False
        with lock:
            outcomes.append((won, i))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for won, i in outcomes if won]
    assert len(winners) == 1
    record = store.read("slots/0.json")
    assert record is not None
    assert record.data == f"pod-{winners[0]}".encode()


def test_moto_itself_refuses_a_stale_if_match_and_a_create_only_write(moto: MotoServer) -> None:
    """moto answers 412 to PutObject with a stale If-Match and to If-None-Match: * on an existing key (raw
    boto3, no adapter), so the s3:// contract tests above cannot pass by accident."""
    s3 = S3Store(moto)
    bucket = s3.new_uri().removeprefix("s3://").split("/")[0]
    first = s3.client.put_object(Bucket=bucket, Key="x", Body=b"one", IfNoneMatch="*")["ETag"]
    s3.client.put_object(Bucket=bucket, Key="x", Body=b"two", IfMatch=first)
    for condition in ({"IfMatch": first}, {"IfNoneMatch": "*"}):
        with pytest.raises(botocore.exceptions.ClientError, match="PreconditionFailed"):
            s3.client.put_object(Bucket=bucket, Key="x", Body=b"three", **condition)
    assert s3.client.get_object(Bucket=bucket, Key="x")["Body"].read() == b"two"


def test_azurite_itself_refuses_a_stale_etag_and_a_create_only_write(azurite: Azurite) -> None:
    """Azurite answers 412 to an upload with a stale If-Match and 409 to If-None-Match: * on an existing
    blob (raw SDK, no adapter), so the az:// contract tests above cannot pass by accident."""
    az = AzureStore(azurite)
    container = az.new_uri().removeprefix("az://").split("/")[0]
    blob = az.service.get_blob_client(container, "x")
    first = blob.upload_blob(b"one", overwrite=False)["etag"]
    blob.upload_blob(b"two", overwrite=True, etag=first, match_condition=MatchConditions.IfNotModified)
    with pytest.raises(azure_exceptions.ResourceModifiedError):
        blob.upload_blob(b"three", overwrite=True, etag=first, match_condition=MatchConditions.IfNotModified)
    with pytest.raises(azure_exceptions.ResourceExistsError):
        blob.upload_blob(b"three", overwrite=False)
    assert blob.download_blob().readall() == b"two"
