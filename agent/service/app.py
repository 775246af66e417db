"""The agent as an object: settings in, reconcilers per model, start-up config, status and admin actions.

``cli.py`` builds one from the YAML config and real adapters; tests build one with fakes.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from agent.adapters.prometheus import MetricQuery, PrometheusClient
from agent.adapters.sources.base import ModelSource
from agent.adapters.tfserving.base import ServingControl
from agent.core.domain import ServedModel
from agent.core.errors import ConfigError, GoldenFileError, PermanentSourceError
from agent.core.wedge import ReloadWatch
from agent.fleet import open_coordinator
from agent.fleet.metrics import FleetMetrics
from agent.infra.clock import Clock, SystemClock
from agent.infra.config import AgentSettings, ModelSettings
from agent.infra.logs import event
from agent.infra.metrics import AgentMetrics
from agent.infra.state import StateStore
from agent.pipeline.golden_feed import GenerationReader, GoldenBytesReader, GoldenFeed
from agent.pipeline.memory import MemoryBudget
from agent.pipeline.reconciler import ModelReconciler, PassResult
from agent.pipeline.staging import clean_staging, verify_local
from agent.pipeline.volume import VolumeLimit
from agent.service.scheduler import poll_gap_seconds

log = logging.getLogger("tfs_agent")


class SourceFactory(Protocol):
    """``open_source``: a model's source URI (and its endpoint override) → its ``ModelSource``."""

    def __call__(
        self, uri: str, *, endpoint_url: str | None = None, listing_checksums: bool = True
    ) -> ModelSource: ...


class UriReader(Protocol):
    """``read_uri``: the golden file's bytes (of ``generation`` where the store can), through the model's
    endpoint on s3:// and az://."""

    def __call__(
        self, uri: str, generation: str | None = None, *, endpoint_url: str | None = None
    ) -> bytes: ...


class UriStat(Protocol):
    """``stat_uri``: the golden file's generation token, without reading it."""

    def __call__(self, uri: str, *, endpoint_url: str | None = None) -> str: ...


def volume_limit(settings: AgentSettings) -> VolumeLimit | None:
    """The models volume's limit over everything the agent keeps on it: each model's local_path and the
    state directory (the default layout puts both on the one emptyDir)."""
    limit = settings.serving.local_volume_limit
    if limit is None:
        return None
    return VolumeLimit(limit, [*(m.local_path for m in settings.models), settings.state_dir])


def _source_options(model: ModelSettings) -> dict[str, Any]:
    """What only the s3:// and az:// adapters read: the endpoint, and whether listings must carry checksums
    (marker and quiet completion build the manifest from them). Nothing for other schemes, so a factory
    for file:// or gs:// (or a test's fake) needs no keywords."""
    if not model.source.startswith(("s3://", "az://")):
        return {}
    return {"endpoint_url": model.endpoint_url, "listing_checksums": model.completion.mode != "manifest"}


def _golden_feed(model: ModelSettings, read_uri: UriReader, stat_uri: UriStat | None) -> GoldenFeed | None:
    """The model's golden file, read through its ``endpoint_url`` when it lives on the source's store."""
    golden = model.golden
    if golden is None:
        return None
    same_store = golden.split("://")[0] == model.source.split("://")[0]
    endpoint = model.endpoint_url if same_store else None
    read: GoldenBytesReader = lambda uri, generation: read_uri(uri, generation, endpoint_url=endpoint)  # noqa: E731
    stat: GenerationReader | None = None
    if stat_uri is not None:
        stat = lambda uri: stat_uri(uri, endpoint_url=endpoint)  # noqa: E731
    return GoldenFeed(golden, read=read, stat=stat)


class UnknownModelError(KeyError):
    """An admin request named a model the agent does not manage."""


class Agent:
    """Every managed model, the shared TF Serving control, state and metrics."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        serving: ServingControl,
        open_source: SourceFactory,
        read_uri: UriReader,
        stat_uri: UriStat | None = None,
        live: MetricQuery | None = None,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        reload_watch: ReloadWatch | None = None,
    ) -> None:
        """``stat_uri`` lets a changed golden file be noticed without reading it (else it is read every
        pass); ``live`` answers ``replace_below: {query: ...}`` (default: ``monitoring.prometheus_url``).
        ``reload_watch`` is the one the TF Serving client fills (cli.build_agent); /status, the
        wedge gauge and /livez/tfserving read it."""
        self.settings = settings
        self.serving = serving
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.metrics = AgentMetrics(self.registry)
        self.state = StateStore(settings.state_dir)
        if live is None and settings.monitoring.prometheus_url:
            timeout = settings.monitoring.query_timeout.total_seconds()
            live = PrometheusClient(settings.monitoring.prometheus_url, timeout=timeout)
        self.initial_config_written = threading.Event()
        self.volume = volume_limit(settings)
        limit = settings.serving.memory_limit
        memory = MemoryBudget(limit, settings.serving.memory_factor) if limit is not None else None
        self.reload_watch = reload_watch or ReloadWatch(settings.serving.wedge_reload_deadlines)
        fleet = settings.fleet
        self.fleet_metrics = FleetMetrics(self.registry) if fleet is not None else None
        self.reconcilers = {
            m.name: ModelReconciler(
                m,
                source=open_source(m.source, **_source_options(m)),
                serving=serving,
                state=self.state,
                metrics=self.metrics,
                clock=self.clock,
                golden=_golden_feed(m, read_uri, stat_uri),
                load_timeout=settings.serving.load_timeout.total_seconds(),
                shadow_suffix=settings.candidate_suffix,
                # Cron schedules too: the stale-model alert needs every model's longest gap between polls.
                poll_interval=poll_gap_seconds(m.schedule),
                live=live if m.policy.live_floor is not None else None,
                volume=self.volume,
                fleet=open_coordinator(m.source, fleet, self.clock) if fleet is not None else None,
                fleet_metrics=self.fleet_metrics,
                monitoring_url=settings.serving.monitoring_url,
                memory=memory,
            )
            for m in settings.models
        }
        for name in self.reconcilers:  # one TF Serving, one answer for every model it serves
            self.metrics.watch_reloads(name, lambda: self.reload_watch.wedged)

    # ---- start-up ----------------

    def check_config(self) -> None:
        """Raise ConfigError for what no retry can fix: an unreadable or invalid golden file, a source that
        does not exist or refuses the agent. A transient failure passes here and is the pass's to retry."""
        for name, reconciler in self.reconcilers.items():
            try:
                reconciler.golden()
                reconciler.source.list_versions()
            except (GoldenFileError, PermanentSourceError) as err:
                raise ConfigError(f"model {name}: {err.reason}") from err

    def startup_models(self) -> dict[str, ServedModel]:
        """What TF Serving may start on at once (B2): each model's recorded version if intact on disk, no
        labels (B13: labels in a start-up config fail it), nothing for models never promoted."""
        models: dict[str, ServedModel] = {}
        for m in self.settings.models:
            rec = self.state.get(m.name)
            if rec.serving is None:
                continue
            if not verify_local(m.local_path, rec.serving):
                event(
                    log,
                    "recorded version missing on disk; starting without it",
                    level=logging.WARNING,
                    model=m.name,
                    version=rec.serving,
                )
                self.reconcilers[m.name].promotion.forget()
                continue
            models[m.name] = ServedModel(m.name, str(m.local_path), (rec.serving,))
        return models

    def prepare(self) -> None:
        """Clean leftovers of a crash, then write the start-up config (gates TF Serving's start)."""
        for m in self.settings.models:
            m.local_path.mkdir(parents=True, exist_ok=True)
            for leftover in clean_staging(m.local_path):
                event(log, "removed leftover", model=m.name, path=leftover)
        models = self.startup_models()
        self.serving.reset(models.values())
        self.initial_config_written.set()
        event(
            log,
            "initial config written",
            models=",".join(sorted(models)) or "(none)",
            path=self.settings.serving.model_config_file,
        )

    # ---- passes ----------------

    def reconcile(self, model: str) -> PassResult:
        return self.reconcilers[model].reconcile()

    def run_once(self) -> list[PassResult]:
        return [self.reconcile(name) for name in self.reconcilers]

    # ---- HTTP views ----------------

    def tfserving(self) -> dict[str, Any]:
        """What the agent knows of TF Serving's own health: whether its reloads look wedged, and why."""
        watch = self.reload_watch
        return {
            "reload_wedged": watch.wedged,
            "reload_deadlines_in_a_row": watch.deadlines,
            "reason": watch.reason,
        }

    def tfserving_liveness(self) -> tuple[bool, str]:
        """For TF Serving's livenessProbe (GET /livez/tfserving): not live only while its reloads are wedged
        and ``serving.wedge_liveness`` opts in; the kubelet then restarts the server container."""
        if not self.settings.serving.wedge_liveness:
            return True, "ok (serving.wedge_liveness is off: this endpoint always answers 200)"
        reason = self.reload_watch.reason
        return (False, reason) if reason else (True, "ok")

    def healthy(self) -> bool:
        """The agent itself works (GET /healthz, its livenessProbe): the start-up config is written. Says
        nothing about traffic: a model still validating or a TF Serving restart leave the agent healthy."""
        return self.initial_config_written.is_set()

    def readiness(self) -> tuple[bool, Mapping[str, str]]:
        """Whether the pod should get traffic (GET /readyz): every model serves its recorded version in TF
        Serving and none is held out (a drain). Asked per probe from the state file and GetModelStatus,
        never waiting for a pass, so a restarted agent does not pull a serving pod out of the Service."""
        answers = {name: r.check_ready() for name, r in self.reconcilers.items()}
        reasons = {name: why for name, (ok, why) in answers.items() if not ok}
        return not reasons, reasons

    def status(self) -> Mapping[str, Any]:
        return {
            "healthy": self.healthy(),
            "ready": self.readiness()[0],
            "models": {name: r.status() for name, r in self.reconcilers.items()},
            "tfserving": self.tfserving(),
        }

    # ---- admin actions (AdminActions protocol of agent.service.http) ----------------

    def _model(self, model: str) -> ModelReconciler:
        try:
            return self.reconcilers[model]
        except KeyError:
            raise UnknownModelError(model) from None

    def pin(self, model: str, version: int) -> dict[str, Any]:
        return self._model(model).operator.pin(version)

    def unpin(self, model: str) -> dict[str, Any]:
        return self._model(model).operator.unpin()

    def rollback(self, model: str) -> dict[str, Any]:
        return self._model(model).operator.rollback()

    def clear(self, model: str, version: int) -> dict[str, Any]:
        return self._model(model).operator.clear(version)
