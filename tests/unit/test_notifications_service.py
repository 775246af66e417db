"""The service side of notifications with the real scheduler and agent (in-memory bucket and TF Serving):
which events wake a pass, what a lost and a regained subscription log and count, and that models without
notifications are left alone."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from agent.adapters.notify.events import ObjectEvent
from agent.adapters.notify.pubsub import Subscription
from agent.core.domain import MANIFEST_NAME
from agent.infra.config import settings_from_mapping
from agent.service.app import Agent
from agent.service.notifications import ModelEvents, Notifications
from agent.service.scheduler import build_scheduler
from testkit.fakes_serving import FakeServing
from testkit.fakes_sources import InMemorySource
from testkit.poll import poll_until

TOPIC = "projects/p1/topics/gcs-events"


class FakeListener:
    """Stands in for PubSubListener (our own port): records what it was built with."""

    def __init__(self, subscription: Subscription, events: ModelEvents) -> None:
        self.subscription, self.events = subscription, events
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


@dataclass
class Rig:
    agent: Agent
    notifications: Notifications
    listeners: list[FakeListener]
    scheduler: BackgroundScheduler

    def value(self, name: str, **labels: str) -> float:
        return self.agent.registry.get_sample_value(name, {"model": "m", **labels}) or 0.0

    def polls(self, model: str = "m") -> float:
        return (
            self.agent.registry.get_sample_value("tfs_agent_polls_total", {"model": model, "outcome": "ok"})
            or 0
        )


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    def model(name: str, **extra: Any) -> dict[str, Any]:
        source = f"gs://mlb/models/{name}"
        return {"name": name, "source": source, "local_path": str(tmp_path / name), **extra}

    settings = settings_from_mapping(
        {
            "state_dir": str(tmp_path / "state"),
            "serving": {"model_config_file": str(tmp_path / "models.config")},
            "models": [model("m", notifications={"topic": TOPIC}, schedule={"interval": "1h"}), model("n")],
        }
    )
    agent = Agent(settings, serving=FakeServing(), open_source=InMemorySource, read_uri=lambda _u: b"")
    listeners: list[FakeListener] = []

    def factory(sub: Subscription, events: ModelEvents) -> FakeListener:
        listeners.append(FakeListener(sub, events))
        return listeners[-1]

    notifications = Notifications(agent, pod="pod-a", listener_factory=factory)
    jobs = {
        m.name: (m.schedule, notifications.wrap(m.name, lambda n=m.name: agent.reconcile(n)))
        for m in settings.models
    }
    scheduler = build_scheduler(jobs)
    notifications.start(scheduler)
    scheduler.start()
    made = Rig(agent, notifications, listeners, scheduler)
    poll_until(lambda: made.polls() >= 1, timeout=30, what="the first pass")
    yield made
    notifications.stop()
    scheduler.shutdown(wait=True)


def test_only_models_with_notifications_get_a_listener(rig: Rig) -> None:
    """One listener, for m: its own subscription named by pod and model, in the topic's project."""
    assert len(rig.listeners) == 1
    sub = rig.listeners[0].subscription
    assert sub.path == "projects/p1/subscriptions/tfs-agent-pod-a-m"
    assert sub.topic == TOPIC
    assert 'hasPrefix(attributes.objectId, "models/m/")' in sub.filter
    assert rig.listeners[0].started


def test_a_manifest_event_wakes_the_pass_and_a_foreign_one_does_not(rig: Rig) -> None:
    """An event for m's manifest runs a pass now; one for model n's prefix is counted as ignored."""
    events = rig.listeners[0].events
    later = time.time() + 3000
    poll_until(lambda: rig.scheduler.get_job("m").next_run_time.timestamp() > later, timeout=10)
    before = rig.polls()
    events.event(ObjectEvent("mlb", f"models/n/3/{MANIFEST_NAME}", "OBJECT_FINALIZE", 1.0))
    assert rig.value("tfs_agent_notification_events_total", kind="ignored") == 1
    assert rig.scheduler.get_job("m").next_run_time.timestamp() > later  # a wake moves it to now at once
    events.event(ObjectEvent("mlb", f"models/m/3/{MANIFEST_NAME}", "OBJECT_FINALIZE", None))
    poll_until(lambda: rig.polls() > before, timeout=30, what="the woken pass")
    assert rig.value("tfs_agent_notification_events_total", kind="manifest") == 1


def test_lost_and_regained_subscriptions_log_once_and_catch_up(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Two failures in a row: one warning, gauge 0, two counted failures; subscribed again: one info line,
    gauge 1, and a catch-up pass."""
    events = rig.listeners[0].events
    caplog.set_level(logging.INFO, logger="tfs_agent.notify")
    events.lost("ServiceUnavailable: 503 connection refused", 1.0)
    events.lost("ServiceUnavailable: 503 connection refused", 2.0)
    assert rig.value("tfs_agent_notifications_connected") == 0
    assert rig.value("tfs_agent_notification_failures_total", error="ServiceUnavailable") == 2
    before = rig.polls()
    events.subscribed("projects/p1/subscriptions/tfs-agent-pod-a-m")
    poll_until(lambda: rig.polls() > before, timeout=30, what="the catch-up pass")
    assert rig.value("tfs_agent_notifications_connected") == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "tfs_agent.notify"]
    assert messages == [
        "notifications lost; polling on schedule until re-subscribed",
        "notifications connected; catch-up pass",
    ]


def test_stop_stops_every_listener(rig: Rig) -> None:
    """A clean shutdown stops the listeners (which delete the agent's own subscriptions)."""
    rig.notifications.stop()
    assert all(listener.stopped for listener in rig.listeners)
