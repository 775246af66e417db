"""The fleet's fault cases with real processes (issue 13): the canary killed during its bake, one pod cut off
from the bucket mid-rollout, two OS processes racing for one slot on real stores.

Pods are (agent + tfs-devserver) process pairs on loopback (testkit/fleet.py). That fake-gcs-server itself
refuses a stale or create-only write, so that no race below passes by accident, is shown in
tests/integration/test_record_stores.py (``test_emulator_itself_refuses_*``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.adapters.sources import open_record_store
from agent.adapters.sources.base import CREATE_ONLY
from agent.core.fleet_records import Phase, Purpose, Release, Slot, decode, encode, slot_name
from agent.fleet.coordinator import fleet_uri
from testkit.faulty_models import build_fails_on
from testkit.fleet import (
    FLEET,
    Pod,
    Records,
    fleet_on_v1,
    on_version,
    publish_version,
    read_records,
    records_until,
    start_pods,
)
from testkit.gcs import FakeGcsServer
from testkit.poll import poll_until
from testkit.proxy import Proxy

pytestmark = pytest.mark.slow

# A bake long enough that a kill lands inside it (the canary's bake is canary_bake of live traffic).
LONG_BAKE = {**FLEET, "canary_bake": "8s"}
NAMES = ["pod-a", "pod-b", "pod-c"]
RACER = [sys.executable, "-m", "testkit.fleetrace"]


def _canary_baking(pods: list[Pod], bucket: str) -> Pod:
    """The pod baking v2 as the canary: named in the release's canaries, serving v2 (switched), not baked."""
    records = records_until(
        bucket,
        "a canary switched to v2",
        lambda r: (
            r.release is not None
            and r.release.phase is Phase.CANARY
            and r.release.target == 2
            and bool(r.release.canaries)
            and not r.release.baked
            and next(p for p in pods if p.pod == r.release.canaries[-1]).model().get("serving") == 2
        ),
    )
    assert records.release is not None
    return next(p for p in pods if p.pod == records.release.canaries[-1])


def _past_the_canary(bucket: str) -> Release:
    records = records_until(
        bucket,
        "the release past the canary phase",
        lambda r: r.release is not None and r.release.phase in (Phase.ROLLING, Phase.DONE, Phase.ABORTED),
    )
    assert records.release is not None
    return records.release


def test_canary_agent_killed_during_its_bake(pods: list[Pod], tmp_path: Path) -> None:
    """SIGKILL of the canary's agent mid-bake: the release does not move on its word; its slot expires,
    another pod canaries and bakes v2, the rest follow, and the killed pod comes back on v2. No request
    fails (v2 is good and the killed pod's TF Serving keeps answering)."""
    bucket = fleet_on_v1(pods, tmp_path, NAMES, fleet=LONG_BAKE)
    loads = [p.load(rate=20) for p in pods]
    publish_version(tmp_path, bucket, 2, b=2.0)
    victim = _canary_baking(pods, bucket)
    assert victim.agent is not None
    victim.agent.kill()
    at_kill = read_records(bucket)
    assert at_kill is not None
    assert at_kill.release is not None
    assert victim.pod not in at_kill.release.baked, "the kill landed after the bake: no fault injected"
    survivors = [p for p in pods if p is not victim]

    release = _past_the_canary(bucket)
    assert release.phase is not Phase.ABORTED, release
    assert victim.pod not in release.baked
    assert len(release.baked) == 1, release
    assert release.baked[0] in {p.pod for p in survivors}, release
    on_version(survivors, 2)
    assert "takeover=True" in "".join(p.agent_logs() for p in survivors)  # slot 0 expired, by the store
    victim.revive()
    on_version(pods, 2)
    assert [load.stop()["failed"] for load in loads] == [0, 0, 0]


@pytest.mark.extended
def test_canary_agent_killed_baking_a_version_that_fails_live_traffic(
    pods: list[Pod], tmp_path: Path
) -> None:
    """The same kill while the canary bakes a version that fails live traffic: the next canary's bake fails,
    the release aborts with a verdict, the third pod never loads it, and the killed pod rolls back when its
    agent is back (its TF Serving kept serving the bad version meanwhile: nobody was watching it)."""
    bucket = fleet_on_v1(pods, tmp_path, NAMES, fleet=LONG_BAKE)
    for p in pods:
        p.load(rate=20)
    publish_version(tmp_path, bucket, 2, build=build_fails_on, bad=5.0)
    victim = _canary_baking(pods, bucket)
    assert victim.agent is not None
    victim.agent.kill()
    release = _past_the_canary(bucket)
    assert release.phase is Phase.ABORTED, release
    assert victim.pod not in release.baked
    assert release.reason.startswith("canary pod-"), release.reason
    assert victim.pod not in release.reason, release.reason  # decided by the live canary's own bake
    assert _verdicts(bucket) == ["verdicts/2.json"]
    survivors = [p for p in pods if p is not victim]
    on_version(survivors, 1)
    victim.revive()
    on_version(pods, 1)
    second = release.reason.split()[1].rstrip(":")
    assert sorted(p.pod for p in pods if p.served(2)) == sorted([victim.pod, second])


@pytest.mark.extended
def test_canary_tf_serving_killed_during_its_bake(pods: list[Pod], tmp_path: Path) -> None:
    """SIGKILL of the canary's TF Serving mid-bake, restarted as a supervisor would: no verdict on v2 (the
    outage is the pod's, not the version's); the canary bakes again and the whole fleet ends on v2."""
    bucket = fleet_on_v1(pods, tmp_path, NAMES, fleet=LONG_BAKE)
    loads = {p.pod: p.load(rate=20) for p in pods}
    publish_version(tmp_path, bucket, 2, b=2.0)
    victim = _canary_baking(pods, bucket)
    victim.restart_server(kill=True)

    release = _past_the_canary(bucket)
    assert release.phase is not Phase.ABORTED, release
    on_version(pods, 2)
    assert not _verdicts(bucket)
    failed = {name: load.stop() for name, load in loads.items()}
    assert all(r["failed"] == 0 for name, r in failed.items() if name != victim.pod), failed
    # The canary's own clients saw the server go: refused connections, not answers from a bad version.
    codes = {code for _, code in failed[victim.pod]["failures"]}
    assert codes <= {"UNAVAILABLE"}, failed[victim.pod]["errors"]


def _verdicts(bucket: str) -> list[str]:
    return [i.name for i in open_record_store(fleet_uri(bucket, "prod")).list("verdicts/")]


# ---- one pod cut off from the bucket ----


@pytest.fixture
def gcs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcsServer]:
    server = FakeGcsServer(tmp_path)
    server.start()
    server.client().create_bucket("ml-models")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)  # this process reads the records directly
    yield server
    server.stop()


def test_pod_cut_off_from_the_bucket_mid_rollout(pods: list[Pod], tmp_path: Path, gcs: FakeGcsServer) -> None:
    """Over gs://, each pod reaching fake-gcs-server through its own proxy. The pod holding the rolling
    slot is cut off (every request to the bucket refused): its slot expires and is taken over, the others
    finish v2, and once the cut heals it converges on v2 with the error in its ledger entry."""
    bucket = "gs://ml-models/m"
    proxies = {name: Proxy(gcs.port).__enter__() for name in NAMES}
    try:
        publish_version(tmp_path, bucket, 1)
        for name in NAMES:
            start_pods(pods, tmp_path, bucket, [name], agent_env={"STORAGE_EMULATOR_HOST": proxies[name].url})
        on_version(pods, 1)
        publish_version(tmp_path, bucket, 2, b=2.0)
        holder = records_until(bucket, "a slot held while rolling", lambda r: bool(r.holder("rolling", 2)))
        cut = next(p for p in pods if p.pod == holder.holder("rolling", 2))
        proxies[cut.pod].cut()
        still = read_records(bucket)
        held = still is not None and any(s.holder == cut.pod for s in still.slots)
        others = [p for p in pods if p is not cut]

        on_version(others, 2)
        if held:  # the cut pod's slot expired (store clock) and the next pod took it over
            assert "takeover=True" in "".join(p.agent_logs() for p in others)
        assert proxies[cut.pod].cut_refused > 0
        proxies[cut.pod].heal()
        error = records_until(
            bucket, f"{cut.pod}'s ledger showing the error", lambda r: bool(_ledger_error(r, cut.pod)), 120
        )
        assert "gs://ml-models/m" in (_ledger_error(error, cut.pod) or "")
        on_version(pods, 2)
    finally:
        for pod in pods:  # before the proxies and the emulator go
            pod.close()
        pods.clear()
        for proxy in proxies.values():
            proxy.__exit__(None, None, None)


def _ledger_error(records: Records, pod: str) -> str | None:
    entry = records.ledger.get(pod)
    return entry.last_error if entry is not None else None


# ---- two OS processes racing for one slot ----


@pytest.mark.parametrize("slot", ["missing", "released"])
@pytest.mark.parametrize("kind", ["file", "gs"])
def test_two_processes_race_for_one_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, slot: str
) -> None:
    """Two processes, each the agent's FleetCoordinator for a pod behind a rolling release, send their CAS on
    slot 0 (create-only when missing, on the read generation when released) at one moment: exactly one wins;
    the loser's write is refused (a lost race, counted), it re-reads and re-decides WAIT naming the winner,
    and the slot record is the winner's."""
    if kind == "gs":
        server = FakeGcsServer(tmp_path)
        server.start()
        server.client().create_bucket("ml-models")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        uri = "gs://ml-models/m/_fleet/prod"
    else:
        uri = f"file://{tmp_path}/bucket/m/_fleet/prod"
    try:
        outcomes = _race(tmp_path, uri, slot)
    finally:
        if kind == "gs":
            server.stop()
    winners = [pod for pod, o in outcomes.items() if o["won"]]
    assert len(winners) == 1, outcomes
    (winner,) = winners
    (loser,) = set(outcomes) - {winner}
    assert all(o["first"] == "take_slot" for o in outcomes.values()), outcomes
    assert outcomes[loser]["lost_races"] == 1, outcomes  # refused by the store, not an overwrite
    assert outcomes[loser]["then"] == "wait", outcomes
    assert winner in str(outcomes[loser]["then_reason"]), outcomes
    assert outcomes[winner]["then"] == "switch", outcomes


def _race(tmp: Path, uri: str, slot: str) -> dict[str, dict[str, object]]:
    """A rolling release of v2 (and slot 0 released, or missing); two racer processes; their outcomes, after
    checking that the slot record names the winner."""
    store = open_record_store(uri)
    release = Release(1, 2, 1, Phase.ROLLING, "test", "test", 0.0, canaries=("pod-x",), baked=("pod-x",))
    store.write("release.json", encode(release), expect=CREATE_ONLY)
    if slot == "released":
        store.write(slot_name(0), encode(Slot(None, 1, None, None, 0.0)), expect=CREATE_ONLY)
    gate = tmp / "gate"
    gate.mkdir()
    racers = {
        pod: subprocess.Popen([*RACER, uri, pod, str(gate), str(tmp / pod)]) for pod in ("pod-1", "pod-2")
    }
    try:
        poll_until(
            lambda: all((gate / f"ready-{p}").exists() for p in racers) or _exited(racers),
            timeout=60,
            what="both racers at the gate",
        )
        (gate / "go").touch()
        assert [p.wait(60) for p in racers.values()] == [0, 0]
    finally:
        for proc in racers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    outcomes = {pod: json.loads((tmp / pod).read_text()) for pod in racers}
    record = store.read(slot_name(0))
    assert record is not None
    held = decode(Slot, record.data, origin="slot 0")
    assert held.holder in outcomes, (held, outcomes)
    assert outcomes[held.holder]["won"], (held, outcomes)
    assert held.purpose is Purpose.ROLL
    return outcomes


def _exited(racers: dict[str, subprocess.Popen[bytes]]) -> bool:
    return any(p.poll() is not None for p in racers.values())
