"""Bucket notifications wake passes: one Pub/Sub listener per model with ``notifications``, whose events
(sorted by the model's own filter) wake that model's pass through ``Wakeups``. Polling stays as
reconciliation: nothing here changes a schedule, and a lost subscription only means waiting for it.

Models without ``notifications`` are untouched, and without any such model nothing of Pub/Sub is imported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from agent.adapters.notify.events import KINDS, EventFilter, ObjectEvent, subscription_id
from agent.adapters.notify.pubsub import PubSubListener, Subscription, require_client
from agent.infra.config import AgentSettings, ModelSettings, pod_name
from agent.infra.logs import event
from agent.infra.metrics import NotificationMetrics
from agent.pipeline.reconciler import PassResult
from agent.service.app import Agent
from agent.service.wakeup import Wakeups

log = logging.getLogger("tfs_agent.notify")

ListenerFactory = Callable[[Subscription, "ModelEvents"], Any]


class ModelEvents:
    """One model's side of its listener: sort, count, wake; one log line per change of health."""

    def __init__(self, model: ModelSettings, metrics: NotificationMetrics, wakeups: Wakeups) -> None:
        # Here, not at the top: the GCS adapter imports google-cloud-storage, which an agent without
        # notifications (and without gs:// sources) never loads.
        from agent.adapters.sources.gcs import split_gs_uri

        self.model = model.name
        self.filter = EventFilter(*split_gs_uri(model.source), model.completion)
        self.metrics, self.wakeups = metrics, wakeups
        self._healthy: bool | None = None
        self._lock = threading.Lock()

    def event(self, ev: ObjectEvent | None) -> None:
        kind = self.filter.kind(ev)
        self.metrics.events.labels(self.model, kind).inc()
        if self.filter.wakes(kind):
            self.wakeups.wake(self.model, event_at=ev.published if ev else None)

    def subscribed(self, subscription: str) -> None:
        self.metrics.connected.labels(self.model).set(1)
        self.metrics.subscriptions.labels(self.model).inc()
        self._transition(True, "notifications connected; catch-up pass", subscription=subscription)
        self.wakeups.wake(self.model)  # events published while there was no subscription are gone

    def lost(self, reason: str, retry_in: float) -> None:
        self.metrics.connected.labels(self.model).set(0)
        self.metrics.failures.labels(self.model, reason.split(":", 1)[0]).inc()
        self._transition(
            False,
            "notifications lost; polling on schedule until re-subscribed",
            reason=reason,
            retry_in_s=retry_in,
        )

    def _transition(self, healthy: bool, message: str, **fields: Any) -> None:
        with self._lock:
            changed, self._healthy = self._healthy is not healthy, healthy
        if changed:
            level = logging.INFO if healthy else logging.WARNING
            event(log, message, level=level, model=self.model, **fields)


class Notifications:
    """Every model's listener and the wake-ups they drive; ``wrap`` jobs, ``start`` after the scheduler."""

    def __init__(
        self,
        agent: Agent,
        *,
        pod: str | None = None,
        listener_factory: ListenerFactory | None = None,
    ) -> None:
        """``pod`` names this replica's subscriptions: by default the fleet id if the config has one
        (issue 13), else ``$POD_NAME``, else the hostname."""
        self.agent, self.pod = agent, pod or _replica_name(agent.settings)
        self.models = {m.name: m for m in agent.settings.models if m.notifications is not None}
        if self.models and listener_factory is None:
            require_client()
        self._factory = listener_factory or (lambda sub, events: PubSubListener(sub, events))
        self.metrics = NotificationMetrics(agent.registry) if self.models else None
        self.wakeups = Wakeups(set(self.models), observe=self._observe, follow_up=self._quiet_deadline)
        self.listeners: list[Any] = []

    def wrap(self, model: str, run: Callable[[], PassResult]) -> Callable[[], PassResult]:
        return self.wakeups.wrap(model, run)

    def start(self, scheduler: Any) -> None:
        if not self.models or self.metrics is None:
            return
        self.wakeups.attach(scheduler)
        for model in self.models.values():
            self.metrics.declare(model.name, KINDS)
            events = ModelEvents(model, self.metrics, self.wakeups)
            listener = self._factory(self._subscription(model, events.filter), events)
            listener.start()
            self.listeners.append(listener)

    def stop(self) -> None:
        for listener in self.listeners:
            listener.stop()
        self.listeners.clear()

    def _subscription(self, model: ModelSettings, filter_: EventFilter) -> Subscription:
        assert model.notifications is not None
        sub_id = subscription_id(self.pod, model.name)
        return Subscription.for_model(model.notifications, sub_id, filter_.subscription_filter())

    def _observe(self, model: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.wake_latency.labels(model).observe(seconds)

    def _quiet_deadline(self, model: str) -> float | None:
        return self.agent.reconcilers[model].discovery.quiet_deadline()


def _replica_name(settings: AgentSettings) -> str:
    fleet = getattr(settings, "fleet", None)  # the fleet's ``id`` where a fleet is configured
    fleet_id = getattr(fleet, "id", None)
    return str(fleet_id) if fleet_id else pod_name()
