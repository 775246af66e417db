"""Assembly of one devserver process: manager, source, core, gRPC, REST and the config-file poller.

Why separate from ``main``: tests and the benchmark can start and stop a whole server in-process, and ``main``
stays about process concerns (flags, exit codes, signals).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import ThreadingHTTPServer

import grpc

from tfs_devserver import config as cfg
from tfs_devserver.core import CoreOptions, ServerCore
from tfs_devserver.flags import Flags
from tfs_devserver.grpc_service import build_server
from tfs_devserver.manager import Manager, ManagerOptions
from tfs_devserver.monitor import StateMonitor
from tfs_devserver.monitoring import DEFAULT_PATH, Metrics
from tfs_devserver.rest import start_rest_server
from tfs_devserver.servable import Servable, load_servable
from tfs_devserver.source import FileSystemSource
from tfs_devserver.status import ServingError
from tfs_devserver.warmup import run_warmup

log = logging.getLogger("tensorflow_serving.model_servers.server")


class DevServer:
    """Everything a ``tensorflow_model_server`` process runs, wired from flags."""

    def __init__(self, flags: Flags) -> None:
        self.flags = flags
        self.metrics = Metrics()
        self.monitor = StateMonitor()
        self.manager = Manager(
            loader=self._load,
            monitor=self.monitor,
            options=ManagerOptions(
                max_num_load_retries=max(0, flags.max_num_load_retries),
                load_retry_interval_seconds=max(0, flags.load_retry_interval_micros) / 1e6,
                num_load_threads=flags.num_load_threads,
                num_unload_threads=flags.num_unload_threads,
            ),
        )
        self.source = FileSystemSource(
            emit=self.manager.set_aspired, poll_wait_seconds=flags.file_system_poll_wait_seconds
        )
        self.core = ServerCore(
            manager=self.manager,
            monitor=self.monitor,
            source=self.source,
            options=CoreOptions(flags.allow_version_labels_for_unavailable_models),
        )
        self.grpc_server: grpc.Server | None = None
        self.grpc_port = 0
        self.rest_server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    def _load(self, name: str, version: int, path: str) -> Servable:
        started = time.perf_counter()
        tags = [t for t in self.flags.saved_model_tags.split(",") if t]
        try:
            servable = load_servable(name, version, path, tags)
            if self.flags.enable_model_warmup:
                run_warmup(servable)
        except Exception:
            self.metrics.record_load(path, False, time.perf_counter() - started)
            raise
        self.metrics.record_load(path, True, time.perf_counter() - started)
        return servable

    def _monitoring_path(self) -> str | None:
        if not self.flags.monitoring_config_file:
            return None
        monitoring = cfg.read_monitoring_config(self.flags.monitoring_config_file)
        if not monitoring.prometheus_config.enable:
            return None
        return monitoring.prometheus_config.path or DEFAULT_PATH

    def start(self, config: cfg.ModelServerConfig) -> None:
        """Load the initial models, then open the ports (B2). Raises ServingError on failure."""
        monitoring_path = self._monitoring_path()
        self.manager.start()
        self.core.reload_config(config)
        flags = self.flags
        self.grpc_server, self.grpc_port = build_server(
            self.core,
            self.metrics,
            port=flags.port,
            socket_path=flags.grpc_socket_path,
            channel_args=flags.grpc_channel_arguments,
            max_threads=flags.grpc_max_threads,
        )
        log.info("Running gRPC ModelServer at 0.0.0.0:%d ...", self.grpc_port)
        if flags.rest_api_port and flags.rest_api_port == flags.port:
            log.error(
                "server_options.http_port cannot be same as grpc_port. Please use a different port for "
                "HTTP/REST API. Skipped exporting HTTP/REST API."
            )
        elif flags.rest_api_port:
            self.rest_server = start_rest_server(
                self.core,
                self.metrics,
                port=flags.rest_api_port,
                timeout_ms=flags.rest_api_timeout_in_ms,
                monitoring_path=monitoring_path,
            )
            log.info("Exporting HTTP/REST API at:localhost:%d ...", flags.rest_api_port)
        if flags.model_config_file and flags.model_config_file_poll_wait_seconds > 0:
            threading.Thread(target=self._poll_config_file, name="config-poll", daemon=True).start()

    def _poll_config_file(self) -> None:
        while not self._stop.wait(self.flags.model_config_file_poll_wait_seconds):
            try:
                config = cfg.read_model_server_config(self.flags.model_config_file)
            except cfg.ConfigParseError as exc:
                log.error("Failed to read ModelServerConfig file: %s (%s)", exc.message, exc.parser_message)
                continue
            except ServingError as exc:
                log.error("Failed to read ModelServerConfig file: %s", exc.message)
                continue
            try:
                self.core.reload_config(config)
            except ServingError as exc:
                log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", exc)

    def stop(self) -> None:
        """Close the ports and stop the background threads."""
        self._stop.set()
        self.core.stop()
        self.source.stop()
        if self.rest_server is not None:
            self.rest_server.shutdown()
            self.rest_server.server_close()
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=1).wait()
        self.manager.stop()
