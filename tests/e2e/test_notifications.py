"""Bucket notifications, end to end: the real Pub/Sub emulator, fake-gcs-server publishing GCS-format
notifications to it, the agent and TF Serving as processes — at a 10-minute schedule, so only an event (or
the catch-up pass after a (re)subscription) can explain a version served within seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.core.domain import MANIFEST_NAME
from testkit.gcs import FakeGcsServer, Notify, new_bucket
from testkit.poll import poll_until
from testkit.pubsub import TOPIC, PubSubEmulator, emulator_missing
from testkit.stack import MODEL, Stack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(emulator_missing() is not None, reason=str(emulator_missing())),
]
POD = "pod-a"
SUBSCRIPTION_ID = f"tfs-agent-{POD}-{MODEL}"
EVENTS = "tfs_agent_notification_events_total"


@dataclass
class World:
    emulator: PubSubEmulator
    gcs: FakeGcsServer

    def stack(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, **model: object) -> Stack:
        """A stack on a fresh bucket whose agent subscribes to the topic, polling only every 10 minutes."""
        bucket = new_bucket(self.gcs.client())
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", self.gcs.url)
        env = {"STORAGE_EMULATOR_HOST": self.gcs.url, "POD_NAME": POD, **self.emulator.env}
        model = {"notifications": {"topic": self.emulator.topic_path()}, **model}
        return Stack(
            tmp, source=f"gs://{bucket}/{MODEL}", agent_env=env, schedule={"interval": "10m"}, **model
        )


def start_world(tmp: Path) -> World:
    emulator = PubSubEmulator(tmp / "pubsub").start()
    emulator.create_topic()
    gcs = FakeGcsServer(tmp / "gcs", pubsub=Notify(emulator.host_port, emulator.project, TOPIC))
    (tmp / "gcs").mkdir(parents=True, exist_ok=True)
    gcs.start()
    return World(emulator, gcs)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = start_world(tmp_path_factory.mktemp("notify-world"))
    yield made
    made.gcs.stop()
    made.emulator.stop()


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    made: list[Stack] = []
    yield made
    for stack in made:
        stack.close()


def connected(stack: Stack) -> bool:
    assert stack.agent is not None
    return metric(stack, "tfs_agent_notifications_connected") == 1


def metric(stack: Stack, sample: str, **labels: str) -> float:
    assert stack.agent is not None
    return stack.agent.metric(sample, model=MODEL, **labels) or 0.0


def started(stack: Stack, stacks: list[Stack]) -> Stack:
    stacks.append(stack)  # closed by the fixture even if starting fails half-way
    stack.start()
    poll_until(lambda: connected(stack), timeout=60, interval=0.1, what="the agent subscribed")
    poll_until(
        lambda: metric(stack, "tfs_agent_polls_total", outcome="ok") >= 1,
        timeout=60,
        interval=0.1,
        what="the first pass",
    )
    return stack


def test_published_version_serves_within_seconds_at_a_ten_minute_schedule(
    world: World, stacks: list[Stack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest's event wakes the pass at once; the agent's own subscription (≥ 1 day expiry, the model's
    prefix as filter) is gone after a clean stop."""
    stack = started(world.stack(tmp_path, monkeypatch), stacks)
    sub_path = f"projects/{world.emulator.project}/subscriptions/{SUBSCRIPTION_ID}"
    sub = world.emulator.subscriber().get_subscription(request={"subscription": sub_path}, timeout=30)
    assert sub.expiration_policy.ttl.total_seconds() >= 86_400
    assert f'hasPrefix(attributes.objectId, "{MODEL}/")' in sub.filter
    stack.publish(1)
    stack.wait_serving(1, timeout=60)
    stack.publish(2)
    stack.wait_serving(2, timeout=60)
    assert metric(stack, EVENTS, kind="manifest") >= 2
    assert metric(stack, "tfs_agent_notification_wake_latency_seconds_count") >= 1
    assert stack.agent is not None
    assert stack.agent.stop() == 0
    assert sub_path not in world.emulator.subscriptions()


def test_quiet_completion_serves_when_the_quiet_timer_runs_out(
    world: World, stacks: list[Stack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With quiet:3s each file's event restarts the timer and a pass follows when it runs out: served in
    seconds at a 10-minute schedule, and not before the version was quiet."""
    stack = started(world.stack(tmp_path, monkeypatch, completion="quiet:3s"), stacks)
    stack.publish(1)
    written = time.time()
    stack.wait_serving(1, timeout=60)
    assert metric(stack, EVENTS, kind="object") >= 1
    promoted_at = stack.model()["last_promotion"]
    assert promoted_at >= written + 2.5


def test_duplicate_late_and_foreign_events_change_nothing(
    world: World, stacks: list[Stack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Duplicated and late manifest events only wake a pass that finds nothing to do; events for another
    prefix or bucket (the emulator ignores the subscription's filter) are counted and wake nothing."""
    stack = started(world.stack(tmp_path, monkeypatch), stacks)
    bucket = stack.bucket.split("/")[2]
    stack.publish(1)
    stack.publish(2)
    stack.wait_serving(2, timeout=60)
    promoted = metric(stack, "tfs_agent_candidates_total", outcome="promoted")
    polls = metric(stack, "tfs_agent_polls_total", outcome="ok")
    # Foreign: another prefix in the same bucket (a real upload) and another bucket's manifest.
    world.gcs.client().bucket(bucket).blob(f"other/7/{MANIFEST_NAME}").upload_from_string(b"{}")
    world.emulator.publish({"bucketId": "elsewhere", "objectId": f"{MODEL}/9/{MANIFEST_NAME}"})
    poll_until(
        lambda: metric(stack, EVENTS, kind="ignored") >= 2, timeout=60, interval=0.1, what="foreign events"
    )
    # Late: v1's manifest again after v2 serves. Its pass is the only one since `polls` was read.
    late = {"bucketId": bucket, "objectId": f"{MODEL}/1/{MANIFEST_NAME}", "eventType": "OBJECT_FINALIZE"}
    world.emulator.publish(late)
    poll_until(
        lambda: metric(stack, "tfs_agent_polls_total", outcome="ok") > polls,
        timeout=60,
        interval=0.1,
        what="the late event's pass",
    )
    assert metric(stack, "tfs_agent_polls_total", outcome="ok") == polls + 1
    # Duplicated: v2's manifest twice more.
    manifests = metric(stack, EVENTS, kind="manifest")
    for _ in range(2):
        world.emulator.publish({**late, "objectId": f"{MODEL}/2/{MANIFEST_NAME}"})
    poll_until(
        lambda: metric(stack, EVENTS, kind="manifest") >= manifests + 2,
        timeout=60,
        interval=0.1,
        what="the duplicates",
    )
    poll_until(
        lambda: metric(stack, "tfs_agent_polls_total", outcome="ok") > polls + 1,
        timeout=60,
        interval=0.1,
        what="their pass",
    )
    model = stack.model()
    assert model["serving"] == 2
    assert model["quarantined"] == {}
    assert metric(stack, "tfs_agent_candidates_total", outcome="promoted") == promoted


def test_emulator_restart_resubscribes_and_catches_up(
    stacks: list[Stack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pub/Sub restarting empty loses the subscription and the events sent meanwhile: the agent notices,
    says so once, re-creates its subscription and its catch-up pass serves the version nobody announced."""
    world = start_world(tmp_path / "world")
    try:
        stack = started(world.stack(tmp_path, monkeypatch), stacks)
        stack.publish(1)
        stack.wait_serving(1, timeout=60)
        world.emulator.restart()  # empty: no topic, no subscription
        stack.publish(2)  # fake-gcs-server drops this event: the topic is missing
        manifests = metric(stack, EVENTS, kind="manifest")
        world.emulator.create_topic()  # the operator's part
        stack.wait_serving(2, timeout=90)
        assert metric(stack, "tfs_agent_notification_subscriptions_total") >= 2
        assert metric(stack, EVENTS, kind="manifest") == manifests
        assert stack.agent is not None
        assert stack.agent.log().count("notifications lost") == 1
        assert connected(stack)
    finally:
        for stack in stacks:
            stack.close()
        stacks.clear()
        world.gcs.stop()
        world.emulator.stop()


def test_emulator_ignores_subscription_filters(world: World) -> None:
    """The emulator stores a filter but delivers what it excludes (real Pub/Sub would not): the agent's own
    filtering is what the foreign-event test checks, not the emulator's."""
    subscriber = world.emulator.subscriber()
    path = f"projects/{world.emulator.project}/subscriptions/filter-probe"
    subscriber.create_subscription(
        request={"name": path, "topic": world.emulator.topic_path(), "filter": 'attributes.objectId = "x"'},
        timeout=30,
    )
    try:
        world.emulator.publish({"bucketId": "b", "objectId": "not-x"})
        pulled = subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=30)
        assert [dict(m.message.attributes)["objectId"] for m in pulled.received_messages] == ["not-x"]
    finally:
        subscriber.delete_subscription(request={"subscription": path}, timeout=30)
