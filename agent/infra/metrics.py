"""Prometheus metrics for every pipeline step, on an injected registry (no module-level globals).

Names follow Prometheus conventions with the ``tfs_agent_`` prefix; the alerts in k8s/ and the Grafana
dashboard depend on them, so treat them as a public contract (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agent.core.errors import AgentError

# Stages run from milliseconds (verify a small model) to many minutes (download a multi-GB model).
_STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

# From milliseconds (the pass was free) to a scheduled interval (the wake was lost and the poll found it).
_WAKE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 600)

STAGES = ("detect", "download", "verify", "validate", "load", "promote", "bake")
OUTCOMES = ("promoted", "rejected", "quarantined", "incomplete")
ROLLBACK_REASONS = ("bake_failed", "operator")


class AgentMetrics:
    """All of the agent's metrics; one instance per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.polls = Counter(
            "tfs_agent_polls",
            "Polls of a model's source, by outcome (ok|error).",
            ["model", "outcome"],
            registry=registry,
        )
        self.poll_duration = Histogram(
            "tfs_agent_poll_duration_seconds",
            "Time of one whole reconcile pass.",
            ["model"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.candidates = Counter(
            "tfs_agent_candidates",
            "Candidate versions by outcome (promoted|rejected|quarantined|incomplete).",
            ["model", "outcome"],
            registry=registry,
        )
        self.stage_duration = Histogram(
            "tfs_agent_stage_duration_seconds",
            "Duration of each pipeline stage (detect|download|verify|validate|load|promote|bake).",
            ["model", "stage"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "tfs_agent_errors",
            "Failures by stage and error type.",
            ["model", "stage", "error"],
            registry=registry,
        )
        self.downloaded_bytes = Counter(
            "tfs_agent_downloaded_bytes", "Bytes downloaded from the source.", ["model"], registry=registry
        )
        self.serving_version = Gauge(
            "tfs_agent_serving_version",
            "Version the agent has promoted and TF Serving serves (0: none).",
            ["model"],
            registry=registry,
        )
        self.last_success = Gauge(
            "tfs_agent_last_success_timestamp_seconds",
            "When the last promotion of the model finished.",
            ["model"],
            registry=registry,
        )
        self.last_poll_ok = Gauge(
            "tfs_agent_last_poll_success_timestamp_seconds",
            "When the last poll without error finished.",
            ["model"],
            registry=registry,
        )
        self.poll_interval = Gauge(
            "tfs_agent_poll_interval_seconds",
            "Configured time between polls (for cron, the longest gap between two runs); the stale-model"
            " alert compares the age of the last successful poll with a multiple of it.",
            ["model"],
            registry=registry,
        )
        self.rollbacks = Counter(
            "tfs_agent_rollbacks",
            "Rollbacks by reason (bake_failed|operator).",
            ["model", "reason"],
            registry=registry,
        )
        self.quarantined = Gauge(
            "tfs_agent_quarantined_versions", "Versions currently quarantined.", ["model"], registry=registry
        )
        self.validation_metric = Gauge(
            "tfs_agent_validation_metric",
            "Last golden-data metric values, for the candidate and the serving version (role).",
            ["model", "metric", "role"],
            registry=registry,
        )
        self.evidence_ok = Gauge(
            "tfs_agent_evidence_ok",
            "1 when the performance policy's evidence is fresh and usable, by source (golden: the latest"
            " golden file parsed and fits; prometheus: the live query answered with a number); 0 holds.",
            ["model", "source"],
            registry=registry,
        )
        self.ready = Gauge(
            "tfs_agent_model_ready",
            "1 when the model serves a validated version.",
            ["model"],
            registry=registry,
        )
        self.reload_wedged = Gauge(
            "tfs_agent_reload_wedged",
            "1 while TF Serving's ReloadConfig looks wedged (consecutive deadlines while GetModelStatus"
            " answers); the same for every model of the pod, whose reloads are serialized in one server.",
            ["model"],
            registry=registry,
        )

    def declare(self, model: str, poll_interval: float | None = None) -> None:
        """Create a model's series at zero so dashboards and alerts see them before the first event.

        ``poll_interval`` (seconds; for cron schedules the longest gap between runs) feeds the stale-model
        alert, which fires after 5 intervals without a successful poll."""
        if poll_interval is not None:
            self.poll_interval.labels(model).set(poll_interval)
        for outcome in ("ok", "error"):
            self.polls.labels(model, outcome)
        for outcome in OUTCOMES:
            self.candidates.labels(model, outcome)
        self.serving_version.labels(model).set(0)
        self.ready.labels(model).set(0)
        self.quarantined.labels(model).set(0)
        # A counter series born at 1 hides its first event from increase(); alerts on rollbacks need the 0.
        for reason in ROLLBACK_REASONS:
            self.rollbacks.labels(model, reason)
        self.downloaded_bytes.labels(model)
        self.reload_wedged.labels(model).set(0)

    def watch_reloads(self, model: str, wedged: Callable[[], bool]) -> None:
        """Read ``tfs_agent_reload_wedged`` from ``wedged`` at every scrape: the TF Serving client owns the
        state (agent/core/wedge.py), and a scrape must see it even while every pass is stuck in a reload."""
        self.reload_wedged.labels(model).set_function(lambda: 1.0 if wedged() else 0.0)

    @contextmanager
    def stage(self, model: str, stage: str) -> Iterator[None]:
        """Time a stage and count its failure by error type."""
        start = perf_counter()
        try:
            yield
        except Exception as err:
            self.errors.labels(model, stage, type(err).__name__).inc()
            raise
        finally:
            self.stage_duration.labels(model, stage).observe(perf_counter() - start)

    @contextmanager
    def errors_in(self, model: str, stage: str) -> Iterator[None]:
        """Count the agent's own failure of an untimed step (e.g. reaching TF Serving) by stage and type."""
        try:
            yield
        except AgentError as err:
            self.errors.labels(model, stage, type(err).__name__).inc()
            raise

    def record_validation(self, model: str, role: str, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self.validation_metric.labels(model, name, role).set(value)


class NotificationMetrics:
    """Bucket change notifications (Pub/Sub): created only when a model has ``notifications``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "tfs_agent_notification_events",
            "Notifications received, by kind (manifest|marker|fleet|object|ignored).",
            ["model", "kind"],
            registry=registry,
        )
        self.wake_latency = Histogram(
            "tfs_agent_notification_wake_latency_seconds",
            "From an event's publish time to the start of the pass it woke.",
            ["model"],
            buckets=_WAKE_BUCKETS,
            registry=registry,
        )
        self.connected = Gauge(
            "tfs_agent_notifications_connected",
            "1 while the model's subscription is pulled; 0 while Pub/Sub is unreachable or it is re-made.",
            ["model"],
            registry=registry,
        )
        self.failures = Counter(
            "tfs_agent_notification_failures",
            "Subscriptions lost or not made (each attempt), by error type.",
            ["model", "error"],
            registry=registry,
        )
        self.subscriptions = Counter(
            "tfs_agent_notification_subscriptions",
            "(Re)subscriptions, each followed by a catch-up pass.",
            ["model"],
            registry=registry,
        )

    def declare(self, model: str, kinds: tuple[str, ...]) -> None:
        for kind in kinds:
            self.events.labels(model, kind)
        self.connected.labels(model).set(0)
        self.subscriptions.labels(model)
