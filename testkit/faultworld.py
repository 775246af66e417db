"""The world the fault matrix (testkit/faults.py) runs in, started once and reused by every trial.

fake-gcs-server behind a fault-injecting loopback proxy (``FaultProxy``: per-version rules answer object
downloads with an HTTP status, cut them mid-body after a stall, or hold them until released — the hold is how
a trial knows staging is under way), the agent as a real process reading ``gs://`` through that proxy,
tfs-devserver, the model volume (with the agent's state and TF Serving's config file) on a small tmpfs so the
disk can be filled for real, a load generator and a Recorder. Publishing goes to fake-gcs-server directly
through the real GCS API, manifest last.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from agent.adapters.sources.gcs import GcsSink
from agent.core.domain import MANIFEST_NAME
from agent.service.publish import publish
from testkit.gcs import FakeGcsServer, Proxy
from testkit.harness import SHADOW, Recorder
from testkit.poll import poll_until
from testkit.savedmodels import build_half_plus_two
from testkit.stack import MODEL, Stack

BUCKET = "ml-models"
TMPFS_MB = 96  # the agent keeps 64 MiB free beyond a version's size before staging (DEFAULT_RESERVE_BYTES)
CONVERGE_TIMEOUT = 120.0


# ---- the fault-injecting proxy ----


@dataclass
class Rule:
    """What the proxy does to downloads of one version's files (never its manifest): answer ``status``,
    ``cut`` mid-body after ``stall`` s, or ``hold`` until released; ``times`` requests (hold: all)."""

    version: int
    action: str
    times: int = 1_000_000
    status: int = 503
    stall: float = 2.0
    hits: int = 0
    last_hit: float = 0.0
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


class _Writer:
    """The handler's socket writer, wrapped: once the client is gone, writes are dropped silently, so the
    forwarding code still reads the upstream response to its end and closes it. With ``stall`` it lets the
    header block and half the first body chunk through, stalls, then cuts the connection."""

    def __init__(self, inner: Any, connection: socket.socket, stall: float | None) -> None:
        self.inner, self.connection, self.stall = inner, connection, stall
        self.writes, self.gone = 0, False

    def write(self, data: bytes) -> int:
        if self.gone:
            return len(data)
        self.writes += 1
        try:
            if self.stall is None or self.writes == 1:
                return int(self.inner.write(data))
            self.inner.write(data[: max(1, len(data) // 2)])
            time.sleep(self.stall)  # the injected stall itself
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.gone = True
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FaultProxy(Proxy):
    """testkit.gcs.Proxy (counting, forwarding) plus per-version fault rules for object downloads."""

    def __init__(self, upstream_port: int) -> None:
        self.rules: list[Rule] = []
        self._rules_lock = threading.Lock()
        super().__init__(upstream_port)
        self._server.handle_error = lambda *_: None  # type: ignore[method-assign]  # a killed client is fine

    def add(self, rule: Rule) -> Rule:
        with self._rules_lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._rules_lock:
            for rule in self.rules:
                rule.released.set()
            self.rules.clear()

    def _match(self, path: str) -> Rule | None:
        parts = urlsplit(path)
        if not parts.path.startswith("/download/") or "/o/" not in parts.path:
            return None
        name = unquote(parts.path.split("/o/", 1)[1])
        with self._rules_lock:
            for rule in self.rules:
                prefix = f"{MODEL}/{rule.version}/"
                if name.startswith(prefix) and not name.endswith(MANIFEST_NAME) and rule.hits < rule.times:
                    rule.hits += 1
                    rule.last_hit = time.time()
                    return rule
        return None

    def __enter__(self) -> FaultProxy:
        super().__enter__()
        return self

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler()
        proxy = self

        class Faulty(base):  # type: ignore[misc, valid-type]
            def do_GET(self) -> None:  # noqa: N802 (http.server dispatches on this exact name)
                rule = proxy._match(self.path)
                if rule is None:
                    super().do_GET()
                elif rule.action == "status":
                    body = json.dumps({"error": {"code": rule.status, "message": "injected"}}).encode()
                    self.send_response(rule.status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self._forward_faulty(rule)

            def _forward_faulty(self, rule: Rule) -> None:
                if rule.action == "hold":
                    rule.held.set()
                    rule.released.wait(CONVERGE_TIMEOUT)
                handler: Any = self  # the base class is only known at run time
                writer = _Writer(
                    handler.wfile, handler.connection, rule.stall if rule.action == "cut" else None
                )
                handler.wfile = writer
                super().do_GET()
                handler.close_connection = handler.close_connection or writer.gone

            do_HEAD = do_GET  # noqa: N815 (http.server dispatches on this exact name)

        return Faulty


# ---- the world ----


class HeldManifest:
    """A sink that uploads everything but keeps the manifest back until ``release``."""

    def __init__(self, inner: GcsSink) -> None:
        self.inner = inner
        self.held: tuple[str, bytes] | None = None

    @property
    def uri(self) -> str:
        return self.inner.uri

    def upload(
        self,
        path: Path,
        name: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
        crc32c: str | None = None,
    ) -> None:
        self.inner.upload(path, name, on_bytes=on_bytes, crc32c=crc32c)

    def write_bytes(self, name: str, data: bytes) -> None:
        if name.endswith(MANIFEST_NAME):
            self.held = (name, data)
        else:
            self.inner.write_bytes(name, data)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def release(self) -> None:
        assert self.held is not None
        self.inner.write_bytes(*self.held)


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[bool]:
    """Mount a tmpfs of ``size_mb`` on ``path`` (needs root); yields whether it worked, unmounts after."""
    command = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)]
    try:
        mounted = subprocess.run(command, capture_output=True, check=False).returncode == 0
    except OSError:  # no mount(8) at all
        mounted = False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@dataclass
class Trial:
    """One injection and what followed; times are wall clock (the load samples' clock)."""

    fault: str
    version: int
    injected: bool = True
    detail: str = ""
    problems: list[str] = field(default_factory=list)
    started: float = 0.0
    cleared: float = 0.0
    ended: float = 0.0
    converged: bool | None = None
    converge_s: float | None = None
    outage: tuple[float, float] | None = None
    requests: int = 0
    failed: int = 0
    failed_in_outage: int = 0
    failures: list[tuple[float, float, str]] = field(default_factory=list)
    """(start, latency, gRPC code) of each failed request not excused as the outage's."""
    wrong: int = 0

    @property
    def ok(self) -> bool:
        return not self.injected or (
            self.converged is True and not self.problems and not self.failed and not self.wrong
        )


class World:
    """Everything the faults run in, started once: see the module docstring."""

    def __init__(self, tmp: Path, *, rate: float = 50.0, stall: float = 2.0) -> None:
        self.tmp, self.rate, self.stall = tmp, rate, stall
        self.uri = f"gs://{BUCKET}/{MODEL}"
        self._exit = contextlib.ExitStack()
        self._versions = iter(range(2, 1_000_000))

    def __enter__(self) -> World:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def _start(self) -> None:
        (self.tmp / "gcs").mkdir()
        self.gcs = FakeGcsServer(self.tmp / "gcs")
        self.gcs.start()
        self._exit.callback(self.gcs.stop)
        self.client = self.gcs.client()
        self.client.create_bucket(BUCKET)
        self.proxy = self._exit.enter_context(FaultProxy(self.gcs.port))
        self.stack = Stack(self.tmp, source=self.uri, agent_env={"STORAGE_EMULATOR_HOST": self.proxy.url})
        self.on_tmpfs = self._exit.enter_context(tmpfs(self.stack.volume, TMPFS_MB))
        self._exit.callback(self.stack.close)
        self.stack.start()
        self.publish(1)
        self.stack.wait_serving(1, timeout=CONVERGE_TIMEOUT)
        self.rec = self._exit.enter_context(Recorder(self.stack))
        self.load = self.stack.load(rate=self.rate)

    def __exit__(self, *exc: object) -> None:
        self.proxy.clear()
        self._exit.close()

    # ---- acting ----

    def take_version(self) -> int:
        return next(self._versions)

    def publish(
        self, version: int, build: Callable[[Path, int], Path] | None = None, sink: Any = None
    ) -> float:
        """Publish ``version`` through the real GCS API (manifest last); returns when it finished."""
        src = (build or build_half_plus_two)(self.tmp / "build", version)
        publish(
            src,
            self.uri,
            version,
            progress=False,
            model=MODEL,
            sink=sink or GcsSink(self.uri, client=self.client),
        )
        return time.time()

    def agent_process(self) -> subprocess.Popen[bytes]:
        assert self.stack.agent is not None
        assert self.stack.agent.proc is not None
        return self.stack.agent.proc

    def kill_agent(self) -> None:
        os.kill(self.agent_process().pid, signal.SIGKILL)

    # ---- observing ----

    def record(self) -> Mapping[str, Any]:
        """The model's record as on disk now."""
        data = json.loads((self.stack.volume / ".tfs-agent" / "state.json").read_text())
        return dict(data["models"].get(MODEL, {}))

    def converged(self, version: int) -> bool:
        """``version`` serves alone, labelled, with nothing pending or shadowed, AVAILABLE in TF Serving."""
        view = self.rec.latest()
        model = view.config.get(MODEL)
        if view.serving != version or view.step is not None or SHADOW in view.config:
            return False
        if model is None or model.versions != (version,) or view.labelled() != version:
            return False
        assert self.stack.server is not None
        try:
            return self.stack.server.status(MODEL, timeout=5).get(version, ("",))[0] == "AVAILABLE"
        except Exception:  # TF Serving restarting: not converged yet
            return False

    def quarantined(self, version: int) -> str:
        return str(
            poll_until(
                lambda: (self.rec.latest().record.get("quarantined") or {}).get(str(version)),
                timeout=CONVERGE_TIMEOUT,
                what=f"v{version} quarantined",
            )
        )

    def settle(self, trial: Trial) -> None:
        """Wait for convergence on ``trial.version`` (from ``trial.cleared``)."""
        try:
            poll_until(lambda: self.converged(trial.version), timeout=CONVERGE_TIMEOUT, interval=0.01)
        except AssertionError:
            trial.converged = False
        else:
            trial.converged = True
            trial.converge_s = time.time() - trial.cleared
        trial.ended = time.time()
        self.proxy.clear()
        self.rec.disarm_all()


def fill(path: Path) -> None:
    """Allocate every free byte of the filesystem holding ``path``."""
    stat = os.statvfs(path.parent)
    size = stat.f_bavail * stat.f_frsize
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        while size > 0:
            try:
                os.posix_fallocate(fd, 0, size)
                return
            except OSError:
                size -= 4096
    finally:
        os.close(fd)
