"""ServerCore: config reloads, version labels and request routing (B9–B16).

Why one class: these share the reload lock and the remembered config. ReloadConfig is serialized; it validates
(duplicates, relative paths, platform changes, labels, platforms — in that order, B10), remembers the config
*before* the label/platform checks (the stock quirk), replaces the label map whole (B13), hands the models to
the source, and then waits only for models that are new to the source (B12) using a listener that sees only
events after the reload began.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from tfs_devserver import config as cfg
from tfs_devserver.manager import Manager
from tfs_devserver.monitor import ManagerState, ServableState, StateMonitor, servable_id
from tfs_devserver.servable import Servable
from tfs_devserver.source import FileSystemSource, ServableToMonitor
from tfs_devserver.status import Code, ServingError, invalid_argument

log = logging.getLogger("tensorflow_serving.model_servers.server_core")

UNSUPPORTED_CONFIG = (
    "ServerModelConfig type not supported by HandleReloadConfigRequest. "
    "Only ModelConfigList is currently supported"
)


@dataclass(frozen=True)
class CoreOptions:
    """Behaviour switches from the command line."""

    allow_version_labels_for_unavailable_models: bool = False


def _did_not_become_available(failed: list[ServableState]) -> ServingError:
    parts = "".join(
        f"{{{servable_id(s.name, s.version)}{f' due to error: {s.error}' if s.error else ''}}}, "
        for s in failed
    )
    return ServingError(Code.UNKNOWN, f"{len(failed)} model(s) did not become available: {{{parts}}}")


class ServerCore:
    """The model-management half of the server; front ends call ``reload_config`` and ``servable``."""

    def __init__(
        self, *, manager: Manager, monitor: StateMonitor, source: FileSystemSource, options: CoreOptions
    ) -> None:
        self._manager = manager
        self._monitor = monitor
        self._source = source
        self._options = options
        self._reload_lock = threading.Lock()
        self._labels_lock = threading.Lock()
        self._labels: dict[str, dict[str, int]] = {}
        self._config: cfg.ModelServerConfig | None = None
        self._source_started = False
        self._stop = threading.Event()

    @property
    def monitor(self) -> StateMonitor:
        """Servable states, for GetModelStatus."""
        return self._monitor

    def stop(self) -> None:
        """Release any reload that is waiting for models."""
        self._stop.set()

    # ---- ReloadConfig ------------------------------------------------------------------------------------
    def reload_config(self, config: cfg.ModelServerConfig) -> None:
        """Apply a whole new config; serialized with every other reload."""
        with self._reload_lock:
            kind = config.WhichOneof("config")
            if kind is None:
                log.info("Taking no action for empty config.")
                return
            if kind != "model_config_list":
                raise invalid_argument(UNSUPPORTED_CONFIG)
            configs = list(config.model_config_list.config)
            cfg.validate_config_list(configs)
            previous = self._config
            self._config = config  # remembered even if a later check rejects it (stock quirk, B10)
            if previous is not None:
                cfg.validate_no_platform_changes(list(previous.model_config_list.config), configs)
            self._update_labels(configs)
            cfg.validate_platforms(configs)
            log.info("Adding/updating models.")
            self._add_models(configs)
            log.info("Finished adding/updating models")

    def _update_labels(self, configs: list[cfg.ModelConfig]) -> None:
        new_map: dict[str, dict[str, int]] = {}
        for model in configs:
            for label, version in model.version_labels.items():
                state = self._monitor.get(model.name, version)
                if state is None or state.state is not ManagerState.AVAILABLE:
                    existing = self.labels(model.name).get(label)
                    allowed = self._options.allow_version_labels_for_unavailable_models and existing in (
                        None,
                        version,
                    )
                    if not allowed:
                        raise ServingError(
                            Code.FAILED_PRECONDITION,
                            f"Request to assign label to version {version} of model {model.name}, "
                            "which is not currently available for inference",
                        )
                new_map.setdefault(model.name, {})[label] = version
        with self._labels_lock:
            self._labels = new_map

    def _add_models(self, configs: list[cfg.ModelConfig]) -> None:
        servables = [ServableToMonitor(c.name, c.base_path, c.model_version_policy) for c in configs]
        first = not self._source_started
        new_names = {s.name for s in servables} - (set() if first else self._source.names())
        with self._monitor.listener() as listener:
            self._source.update_config(servables)
            if first:
                self._source_started = True
                self._source.start()
            reached = listener.wait_for(new_names, self._stop)
        if reached is None:
            raise ServingError(Code.UNAVAILABLE, "Server is shutting down")
        failed = [reached[n] for n in sorted(reached) if reached[n].state is not ManagerState.AVAILABLE]
        if failed:
            raise _did_not_become_available(failed)

    # ---- labels and routing ------------------------------------------------------------------------------
    def labels(self, name: str) -> dict[str, int]:
        """A model's current label map."""
        with self._labels_lock:
            return dict(self._labels.get(name, {}))

    def resolve(self, spec: model_pb2.ModelSpec) -> tuple[str, int | None]:
        """(model, version or None for latest) for a ModelSpec, with the stock errors (B16)."""
        if not spec.name:
            raise invalid_argument("ModelSpec has no name specified.")
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            return spec.name, spec.version.value
        if choice == "version_label":
            version = self.labels(spec.name).get(spec.version_label)
            if version is None:
                raise invalid_argument(f"Unrecognized servable version label: {spec.version_label}")
            return spec.name, version
        return spec.name, None

    @contextmanager
    def servable(self, spec: model_pb2.ModelSpec) -> Iterator[Servable]:
        """Borrow the servable a ModelSpec resolves to, for the duration of one request."""
        name, version = self.resolve(spec)
        with self._manager.handle(name, version) as servable:
            yield servable

    # ---- GetModelStatus ----------------------------------------------------------------------------------
    def model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatus (B14, B15); ``version_label`` is ignored like in the stock server."""
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        name = request.model_spec.name
        if request.model_spec.HasField("version"):
            version = request.model_spec.version.value
            state = self._monitor.get(name, version)
            if state is None:
                raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
            states = [state]
        else:
            states = self._monitor.versions(name)
            if not states:
                raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for state in states:
            entry = response.model_version_status.add(version=state.version, state=int(state.state))
            entry.status.SetInParent()
            if state.error is not None:
                entry.status.error_code = int(state.error.code)
                entry.status.error_message = state.error.message
        return response
