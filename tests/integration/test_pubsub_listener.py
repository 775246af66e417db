"""The Pub/Sub listener against the real emulator: the subscription it makes or is given, events in, and
what it reports when Pub/Sub goes away and comes back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.adapters.notify.events import ObjectEvent
from agent.adapters.notify.pubsub import EXPIRATION_SECONDS, PubSubListener, Subscription
from testkit.poll import poll_until
from testkit.pubsub import PubSubEmulator, emulator_missing

pytestmark = pytest.mark.skipif(emulator_missing() is not None, reason=str(emulator_missing()))


class Recorder:
    """A Listener that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[ObjectEvent | None] = []
        self.subscribed_to: list[str] = []
        self.lost_because: list[str] = []
        self.lock = threading.Lock()

    def event(self, event: ObjectEvent | None) -> None:
        with self.lock:
            self.events.append(event)

    def subscribed(self, subscription: str) -> None:
        with self.lock:
            self.subscribed_to.append(subscription)

    def lost(self, reason: str, retry_in: float) -> None:
        with self.lock:
            self.lost_because.append(reason)


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubEmulator]:
    running = PubSubEmulator(tmp_path / "pubsub").start()
    running.create_topic()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", running.host_port)
    yield running
    running.stop()


def own(emulator: PubSubEmulator, filter_: str = 'attributes.bucketId = "ml"') -> Subscription:
    path = f"projects/{emulator.project}/subscriptions/tfs-agent-pod-m"
    return Subscription(path, emulator.topic_path(), filter_)


@contextmanager
def subscribed(emulator: PubSubEmulator, sub: Subscription) -> Iterator[tuple[Recorder, Any]]:
    """A started listener once it has subscribed, stopped on exit, with the subscription as Pub/Sub has it."""
    recorder = Recorder()
    listener = PubSubListener(sub, recorder, probe_every=1)
    listener.start()
    try:
        poll_until(lambda: recorder.subscribed_to, timeout=30, what="subscribed")
        yield recorder, emulator.subscriber().get_subscription(request={"subscription": sub.path}, timeout=30)
    finally:
        listener.stop()


def test_own_subscription_is_made_pulled_and_deleted(emulator: PubSubEmulator) -> None:
    """With topic: the listener makes its subscription (filter, ≥ 1 day expiry), passes events on, deletes
    it on stop."""
    sub = own(emulator)
    with subscribed(emulator, sub) as (recorder, made):
        assert made.filter == sub.filter
        assert made.expiration_policy.ttl.total_seconds() == EXPIRATION_SECONDS
        emulator.publish({"bucketId": "ml", "objectId": "m/1/x", "eventType": "OBJECT_FINALIZE"})
        poll_until(lambda: recorder.events, timeout=30, what="the event")
        event = recorder.events[0]
        assert event is not None
        assert (event.bucket, event.name) == ("ml", "m/1/x")
        assert event.published is not None
    assert sub.path not in emulator.subscriptions()


def test_a_left_over_subscription_with_another_filter_is_replaced(emulator: PubSubEmulator) -> None:
    """A subscription of the same name but another filter (filters are immutable) is deleted and re-made."""
    sub = own(emulator)
    emulator.subscriber().create_subscription(
        request={"name": sub.path, "topic": sub.topic, "filter": 'attributes.bucketId = "old"'}, timeout=30
    )
    with subscribed(emulator, sub) as (_, made):
        assert made.filter == sub.filter


def test_a_given_subscription_is_used_and_kept(emulator: PubSubEmulator) -> None:
    """With subscription: nothing is made or deleted; a missing one is reported as lost, not created."""
    path = f"projects/{emulator.project}/subscriptions/operators-own"
    recorder = Recorder()
    missing = PubSubListener(Subscription(path), recorder, probe_every=1)
    missing.start()
    poll_until(lambda: recorder.lost_because, timeout=30, what="the missing subscription reported")
    missing.stop()
    assert "NotFound" in recorder.lost_because[0]
    assert recorder.subscribed_to == []
    emulator.subscriber().create_subscription(
        request={"name": path, "topic": emulator.topic_path()}, timeout=30
    )
    with subscribed(emulator, Subscription(path)):
        pass
    assert path in emulator.subscriptions()


@pytest.mark.slow
def test_pubsub_gone_is_reported_and_the_subscription_made_again(emulator: PubSubEmulator) -> None:
    """Pub/Sub unreachable: the probe reports it lost (the client alone would retry silently); back and
    empty: the listener re-makes its subscription and says so (its owner runs the catch-up pass)."""
    recorder, sub = Recorder(), own(emulator)
    listener = PubSubListener(sub, recorder, probe_every=0.5)
    listener.start()
    try:
        poll_until(lambda: recorder.subscribed_to, timeout=30, what="subscribed")
        emulator.stop()
        poll_until(lambda: recorder.lost_because, timeout=60, what="the outage reported")
        emulator.start()
        emulator.create_topic()
        poll_until(lambda: len(recorder.subscribed_to) == 2, timeout=60, what="subscribed again")
        assert sub.path in emulator.subscriptions()
    finally:
        listener.stop()
