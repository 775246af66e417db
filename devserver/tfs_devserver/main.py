"""``tfs-devserver`` entry point: flags, start-up rules (B2), the config-file poller (B8), shutdown.

Why start-up is strict: the stock server listens on no port until every model of the initial config has a
version AVAILABLE, and exits non-zero with ``Failed to start server. Error: ...`` (on stdout) when one fails;
a config file that does not parse prints the parser's line:column reason on stderr. Deployments key readiness
on that behaviour, so the devserver reproduces it.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import NoReturn

from tfs_devserver import config as cfg
from tfs_devserver.flags import USAGE, FlagError, Flags, parse_flags
from tfs_devserver.status import ServingError

log = logging.getLogger("tensorflow_serving.model_servers.server")
EXIT_FAILURE = 255  # stock main() returns -1


class _TFStyleFormatter(logging.Formatter):
    """``2026-01-01 12:00:00.123456: I path/to/module.cc:0] message``, like TensorFlow's C++ logging."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        micros = int((record.created % 1) * 1e6)
        where = record.name.replace(".", "/") + ".cc"
        text = f"{stamp}.{micros:06d}: {record.levelname[0]} {where}:{record.lineno}] {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TFStyleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _initial_config(flags: Flags) -> cfg.ModelServerConfig:
    if flags.model_config_file:
        return cfg.read_model_server_config(flags.model_config_file)
    return cfg.single_model_config(flags.model_name, flags.model_base_path)


def _print_version() -> None:
    import tensorflow as tf

    print(f"TensorFlow ModelServer: tfs-devserver\nTensorFlow Library: {tf.__version__}")


def _wait_for_signal() -> None:
    done = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("Received signal %d, shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not done.wait(1.0):
        pass


def _run(flags: Flags) -> int:
    # TensorFlow is imported only now, so bad flags fail fast.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    from tfs_devserver.server import DevServer

    # The stock server is C++ and never pauses to collect garbage. Here a full collection walks the ~300,000
    # objects TensorFlow leaves alive, holding the GIL ~250 ms — swap-window p99 went from 3.8 ms to 150 ms
    # (python -m benchmarks.swap). Everything alive now is permanent: move it out of the collector's reach.
    gc.freeze()

    try:
        config = _initial_config(flags)
    except cfg.ConfigParseError as exc:
        print(f"[libprotobuf ERROR text_format.cc] {exc.parser_message}", file=sys.stderr, flush=True)
        print(f"Failed to start server. Error: {exc}", flush=True)
        return EXIT_FAILURE
    except ServingError as exc:
        print(f"Failed to start server. Error: {exc}", flush=True)
        return EXIT_FAILURE
    server = DevServer(flags)
    try:
        server.start(config)
    except ServingError as exc:
        print(f"Failed to start server. Error: {exc}", flush=True)
        server.stop()
        _exit_now(EXIT_FAILURE)
    _wait_for_signal()
    server.stop()
    _exit_now(0)


def _exit_now(code: int) -> NoReturn:
    """End the process even if a load is stuck (a warmup or retry on a worker thread would block exit)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; returns the exit code for usage errors.

    Once a server was built the process ends through ``os._exit`` (0 after a signal, 255 on a failed start),
    so a load stuck on a worker thread cannot keep it alive.
    """
    _setup_logging()
    try:
        flags, unknown = parse_flags(sys.argv[1:] if argv is None else argv)
    except FlagError as exc:
        print(f"{exc}\n{USAGE}", flush=True)
        return EXIT_FAILURE
    for argument in unknown:
        print(f"unknown argument: {argument}", flush=True)
    if flags.version:
        _print_version()
        return 0
    if not flags.model_config_file and not flags.model_base_path:
        print(USAGE, flush=True)
        return EXIT_FAILURE
    return _run(flags)
