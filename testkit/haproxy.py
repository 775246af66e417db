"""HAProxy in front of N pods: gRPC over h2 balanced per request, active health checks on the agents' /readyz.

The role a Kubernetes Service with readiness (or an L7 gateway) plays in production. The config is rendered
to a temp dir; HAProxy cannot bind port 0 and report it, so its port is picked free and the start goes
through ``retry_on_bind_failure`` when another process took it in between. Readiness of the proxy is polled
on its stats socket, which also gives each backend's state and the requests it answered.

Every request is logged to HAProxy's stdout (``requests.log``) with the pod that answered it and when:
``requests()`` parses that, so a test can tell which requests a pod answered while it was loading.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testkit.poll import poll_until
from testkit.ports import PortInUse, free_port, is_bind_failure, retry_on_bind_failure
from testkit.servers import terminate
from testkit.stack import Stack

#: Health-check period: short so a test sees a flip within a second; a Service's probe is 10 s by default.
CHECK_INTERVAL_MS = 200
#: One line per request, written when it ends: the end as UNIX ms (HAProxy's clock at that moment), the
#: active time Ta in ms (from the request's first byte to the end of the response, keep-alive idle and the
#: connection's handshake excluded, so it holds per h2 stream), the pod, the HTTP status and the path.
LOG_FORMAT = "%[date(0,ms)] %Ta %s %ST %HP"


@dataclass(frozen=True)
class Backend:
    """One pod as HAProxy sees it: TF Serving's gRPC port and the agent's HTTP port (for /readyz)."""

    name: str
    grpc_port: int
    agent_port: int


def haproxy_binary() -> str | None:
    return shutil.which("haproxy")


@dataclass(frozen=True)
class Request:
    """One request as HAProxy logged it: [start, end] in UNIX seconds, the pod that answered it."""

    start: float
    end: float
    pod: str
    status: int
    path: str


def parse_requests(lines: Iterable[str]) -> list[Request]:
    """``LOG_FORMAT`` lines; anything else (HAProxy's own notices) is skipped. A request that never reached
    a pod is logged with the server ``<NOSRV>`` and kept (it failed at the proxy)."""
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) != 5 or not (fields[0].isdigit() and fields[1].lstrip("-").isdigit()):
            continue
        end = int(fields[0]) / 1000
        active = max(0, int(fields[1])) / 1000  # -1 when the request was aborted before it completed
        out.append(Request(end - active, end, fields[2], int(fields[3]), fields[4]))
    return out


def render(backends: Sequence[Backend], *, port: int, stats_socket: Path) -> str:
    """haproxy.cfg: one h2 frontend, round-robin per request (h2 multiplexes, so per-connection balancing
    would pin a client to one pod), each server checked with GET /readyz on its agent's port (HTTP/1.1),
    every request logged to stdout in ``LOG_FORMAT``."""
    servers = "\n".join(
        f"  server {b.name} 127.0.0.1:{b.grpc_port} proto h2 check port {b.agent_port} check-proto h1"
        for b in backends
    )
    return f"""global
  stats socket {stats_socket} mode 600 level admin
  stats timeout 30s
  log stdout format raw local0

defaults
  mode http
  log global
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout check 2s

frontend grpc
  bind 127.0.0.1:{port} proto h2
  log-format "{LOG_FORMAT}"
  default_backend pods

backend pods
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter {CHECK_INTERVAL_MS}ms fall 1 rise 1
{servers}
"""


class HAProxy:
    """A running HAProxy process; ``address`` is the gRPC address clients use."""

    def __init__(self, workdir: Path, backends: Sequence[Backend]) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed: apt-get install haproxy (.ci/run installs it)")
        self.binary, self.workdir, self.backends = binary, workdir, list(backends)
        workdir.mkdir(parents=True, exist_ok=True)
        self.stats_socket = workdir / "stats.sock"
        self.request_log = workdir / "requests.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> HAProxy:
        """Start on a free port (another when the bind fails), then wait until the stats socket answers."""
        return retry_on_bind_failure(lambda: self._start_on(free_port(), timeout))

    def _start_on(self, port: int, timeout: float) -> HAProxy:
        self.port = port
        config = self.workdir / "haproxy.cfg"
        config.write_text(render(self.backends, port=port, stats_socket=self.stats_socket))
        self._starts += 1
        errors = self.workdir / f"haproxy-{self._starts}.log"
        # Requests append to one log across attempts: a failed start logged none.
        with self.request_log.open("ab") as out, errors.open("wb") as err:
            self.process = subprocess.Popen([self.binary, "-db", "-f", str(config)], stdout=out, stderr=err)
        if poll_until(self._up_or_exited, timeout=timeout, what="haproxy's stats socket") == "up":
            return self
        output = errors.read_text(errors="replace")
        if is_bind_failure(output):
            raise PortInUse(f"haproxy could not bind {port}: {output[-500:]}")
        raise RuntimeError(f"haproxy exited with {self.process.returncode}: {output[-2000:]}")

    def _up_or_exited(self) -> str | None:
        assert self.process is not None
        if self.process.poll() is not None:
            return "exited"
        try:
            self.command("show info")
        except OSError:
            return None
        return "up"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process, 10)

    def requests(self) -> list[Request]:
        """Every request logged so far (a request appears once it has ended)."""
        if not self.request_log.exists():
            return []
        return parse_requests(self.request_log.read_text(errors="replace").splitlines())

    def command(self, line: str) -> str:
        """One command on the stats socket (``show stat``, ``show servers state``, ...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """``show stat`` rows of the pods backend's servers, by server name (status, hrsp_2xx, ...)."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {r["svname"]: r for r in rows if r["pxname"] == "pods" and r["svname"] not in ("BACKEND",)}

    def status(self, name: str) -> str:
        """UP, DOWN, ... (HAProxy's view of the pod's health check)."""
        return self.servers()[name]["status"].split(" ")[0]

    def answered(self) -> dict[str, int]:
        """Requests each pod answered with a 2xx (gRPC answers, errors too, ride on HTTP 200)."""
        return {name: int(row["hrsp_2xx"] or 0) for name, row in self.servers().items()}

    def wait_status(self, name: str, status: str, timeout: float = 60.0) -> None:
        poll_until(lambda: self.status(name) == status, timeout=timeout, what=f"{name} {status} in haproxy")


def wait_all_up(proxy: HAProxy, timeout: float = 60.0) -> None:
    """Every pod passed its /readyz check."""
    deadline = time.monotonic() + timeout
    for backend in proxy.backends:
        proxy.wait_status(backend.name, "UP", max(1.0, deadline - time.monotonic()))


Span = tuple[float, float, str, int]
"""(start, end, servable, version) of one load, from the server's own log (agent.service.demo.serverlog)."""


def answered_while_loading(
    requests: Iterable[Request], spans: dict[str, list[Span]], model: str
) -> list[tuple[Request, Span]]:
    """The requests a pod answered inside one of its own load windows, with that window: those whose
    [start, end] overlaps a load of ``model`` or of its shadow (``<model>__candidate``) on the server of the
    pod that answered. ``spans`` is by pod name as HAProxy knows it."""
    hits = []
    for request in requests:
        for span in spans.get(request.pod, ()):
            start, end, servable, _ = span
            if (
                (servable == model or servable.startswith(f"{model}__"))
                and request.start <= end
                and start <= request.end
            ):
                hits.append((request, span))
                break
    return hits


class ReadyzWatch(threading.Thread):
    """Samples each pod's /readyz every ``interval`` s (as HAProxy's checks do) and keeps every not-ready
    answer: (time, pod, the reasons by model). The check endpoints are the backends' agent ports."""

    def __init__(self, backends: Sequence[Backend], interval: float = CHECK_INTERVAL_MS / 1000) -> None:
        super().__init__(daemon=True)
        self.backends, self.interval = list(backends), interval
        self.not_ready: list[tuple[float, str, dict[str, str]]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            for backend in self.backends:
                reasons = _readyz(backend.agent_port)
                if reasons is not None:
                    self.not_ready.append((time.time(), backend.name, reasons))

    def stop(self) -> list[tuple[float, str, dict[str, str]]]:
        self.halt.set()
        self.join(10)
        return self.not_ready


def _readyz(port: int) -> dict[str, str] | None:
    """None when ready; else the not-ready reasons by model (``{"": why}`` when the agent did not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
            return None
    except urllib.error.HTTPError as err:
        try:
            return dict(json.loads(err.read())["not_ready"])
        except (ValueError, KeyError):
            return {"": f"HTTP {err.code}"}
    except OSError as err:
        return {"": f"no answer: {err}"}


@contextmanager
def in_front_of(workdir: Path, pods: Mapping[str, Stack]) -> Iterator[HAProxy]:
    """HAProxy in front of started ``pods`` (by backend name), every pod UP; stopped afterwards."""
    backends = []
    for name, pod in pods.items():
        assert pod.server is not None
        assert pod.agent is not None
        backends.append(Backend(name, pod.server.grpc_port, pod.agent.port))
    made = HAProxy(workdir, backends).start()
    try:
        wait_all_up(made)
        yield made
    finally:
        made.stop()
