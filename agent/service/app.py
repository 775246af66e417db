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

from agent.adapters.sources.base import ModelSource
from agent.adapters.tfserving.base import ServingControl
from agent.core.domain import ServedModel
from agent.core.errors import AgentError, ConfigError, GoldenFileError, PermanentSourceError
from agent.core.golden import Golden, parse_golden
from agent.infra.clock import Clock, SystemClock
from agent.infra.config import AgentSettings, ModelSettings
from agent.infra.logs import event
from agent.infra.metrics import AgentMetrics
from agent.infra.state import StateStore
from agent.pipeline.reconciler import GoldenLoader, ModelReconciler, PassResult
from agent.pipeline.staging import clean_staging, verify_local
from agent.service.scheduler import poll_gap_seconds

log = logging.getLogger("tfs_agent")


class SourceFactory(Protocol):
    """``open_source``: a model's source URI (and its endpoint override) → its ``ModelSource``."""

    def __call__(
        self, uri: str, *, endpoint_url: str | None = None, listing_checksums: bool = True
    ) -> ModelSource: ...


class BytesReader(Protocol):
    """``read_uri``: the bytes of one small file (the golden file)."""

    def __call__(self, uri: str, *, endpoint_url: str | None = None) -> bytes: ...


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
        read_uri: BytesReader,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.serving = serving
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.metrics = AgentMetrics(self.registry)
        self.state = StateStore(settings.state_dir)
        self.read_uri = read_uri
        self.initial_config_written = threading.Event()
        self.reconcilers = {
            m.name: ModelReconciler(
                m,
                source=open_source(
                    m.source,
                    endpoint_url=m.endpoint_url,
                    listing_checksums=m.completion.mode != "manifest",
                ),
                serving=serving,
                state=self.state,
                metrics=self.metrics,
                clock=self.clock,
                golden=self._golden_loader(m),
                load_timeout=settings.serving.load_timeout.total_seconds(),
                shadow_suffix=settings.candidate_suffix,
                # Cron schedules too: the stale-model alert needs every model's longest gap between polls.
                poll_interval=poll_gap_seconds(m.schedule),
            )
            for m in settings.models
        }

    def _golden_loader(self, model: ModelSettings) -> GoldenLoader:
        def load() -> Golden | None:
            if model.golden is None:
                return None
            try:
                same_store = model.golden.split("://")[0] == model.source.split("://")[0]
                data = self.read_uri(model.golden, endpoint_url=model.endpoint_url if same_store else None)
            except AgentError as err:
                if err.retryable:  # the bucket hiccuped: a pass to retry, not a broken golden file
                    raise
                raise GoldenFileError(f"cannot read golden file {model.golden}: {err.reason}") from err
            return parse_golden(data, origin=model.golden)

        return load

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

    def healthy(self) -> bool:
        return self.initial_config_written.is_set()

    def readiness(self) -> tuple[bool, Mapping[str, str]]:
        reasons = {name: r.ready_reason for name, r in self.reconcilers.items() if not r.ready}
        return not reasons, reasons

    def status(self) -> Mapping[str, Any]:
        return {
            "healthy": self.healthy(),
            "ready": self.readiness()[0],
            "models": {name: r.status() for name, r in self.reconcilers.items()},
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
