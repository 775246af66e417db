"""The fleet wired into the running agent: N (agent + tfs-devserver) process pairs on loopback, one bucket.

Loads are read from the servers' own logs, never from the agents' reports (docs/fleet.md)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testkit.faulty_models import build_fails_on
from testkit.fleet import (
    Pod,
    fleet_on_v1,
    most_loading,
    on_version,
    publish_version,
    read_records,
    shadow_loads,
    start_pods,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_good_release_rolls_pod_by_pod_validated_once(pods: list[Pod], tmp_path: Path) -> None:
    """A good release moves one pod at a time (servers' logs), and only one server ever shadow-loads it."""
    bucket = fleet_on_v1(pods, tmp_path, ["pod-a", "pod-b", "pod-c"])
    since = time.time()
    loads = [p.load(rate=20) for p in pods]
    publish_version(tmp_path, bucket, 2, b=2.0)
    on_version(pods, 2)
    assert most_loading(pods, since, 2) == 1
    assert shadow_loads(pods, 2) == 1
    assert sum(load.stop()["failed"] for load in loads) == 0


def test_live_traffic_failure_stops_at_the_canary(pods: list[Pod], tmp_path: Path) -> None:
    """A version passing the golden data but failing live traffic is rolled back on the canary alone."""
    bucket = fleet_on_v1(pods, tmp_path, ["pod-a", "pod-b", "pod-c"])
    for p in pods:
        p.load(rate=20)
    publish_version(tmp_path, bucket, 2, build=build_fails_on, bad=5.0)
    wait_for("the canary rolled v2 back", lambda: any(p.model()["quarantined"].get("2") for p in pods), 180)
    on_version(pods, 1)
    served_2 = [p.pod for p in pods if p.served(2)]
    assert len(served_2) == 1, served_2


def test_pod_joining_mid_rollout_goes_to_the_target(pods: list[Pod], tmp_path: Path) -> None:
    """A pod started while v2 rolls ends on v2 without validating it again (one shadow load in the fleet)."""
    bucket = fleet_on_v1(pods, tmp_path, ["pod-a", "pod-b"])
    publish_version(tmp_path, bucket, 2, b=2.0)
    wait_for("a pod on v2", lambda: any(p.model().get("serving") == 2 for p in pods), 180)
    start_pods(pods, tmp_path, bucket, ["pod-c"])
    on_version(pods, 2)
    assert shadow_loads(pods, 2) == 1


def test_slot_holder_sigkilled_mid_rollout(pods: list[Pod], tmp_path: Path) -> None:
    """The agent holding a slot is SIGKILLed: its slot expires, the others finish, and it recovers."""
    bucket = fleet_on_v1(pods, tmp_path, ["pod-a", "pod-b", "pod-c"])
    publish_version(tmp_path, bucket, 2, b=2.0)
    holder = wait_for(
        "a slot held while rolling", lambda: (r := read_records(bucket)) and r.holder("rolling", 2), 180
    )
    victim = next(p for p in pods if p.pod == holder)
    assert victim.agent is not None
    victim.agent.kill()
    survivors = [p for p in pods if p is not victim]
    on_version(survivors, 2)
    # the dead holder's slot was taken over, by the store's clock
    assert "takeover=True" in "".join(p.agent_logs() for p in survivors)
    victim.revive()
    on_version(pods, 2)


@pytest.mark.extended
def test_good_release_over_fake_gcs_server(
    pods: list[Pod], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rollout over gs:// (fake-gcs-server): one pod loading at a time, one validation."""
    from testkit.gcs import FakeGcsServer

    gcs = FakeGcsServer(tmp_path)
    gcs.start()
    try:
        gcs.client().create_bucket("ml-models")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
        bucket = "gs://ml-models/m"
        publish_version(tmp_path, bucket, 1)
        env = {"STORAGE_EMULATOR_HOST": gcs.url}
        start_pods(pods, tmp_path, bucket, ["pod-a", "pod-b", "pod-c"], agent_env=env)
        on_version(pods, 1)
        since = time.time()
        publish_version(tmp_path, bucket, 2, b=2.0)
        on_version(pods, 2)
        assert most_loading(pods, since, 2) == 1
        assert shadow_loads(pods, 2) == 1
    finally:
        for pod in pods:  # before the emulator goes
            pod.close()
        pods.clear()
        gcs.stop()
