"""HAProxy in front of N pods: gRPC over h2 balanced per request, active health checks on the agents' /readyz.

The role a Kubernetes Service with readiness (or an L7 gateway) plays in production. The config is rendered
to a temp dir; HAProxy cannot bind port 0 and report it, so ports are picked free and the start is retried
when another process took one in between. Readiness of the proxy is polled on its stats socket, which also
gives each backend's state and the requests it answered.
"""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from testkit.poll import poll_until
from testkit.ports import free_port
from testkit.servers import terminate

#: Health-check period: short so a test sees a flip within a second; a Service's probe is 10 s by default.
CHECK_INTERVAL_MS = 200
_STARTS = 5  # bind retries: a port chosen free may be taken before HAProxy binds it


@dataclass(frozen=True)
class Backend:
    """One pod as HAProxy sees it: TF Serving's gRPC port and the agent's HTTP port (for /readyz)."""

    name: str
    grpc_port: int
    agent_port: int


def haproxy_binary() -> str | None:
    return shutil.which("haproxy")


def render(backends: Sequence[Backend], *, port: int, stats_socket: Path) -> str:
    """haproxy.cfg: one h2 frontend, round-robin per request (h2 multiplexes, so per-connection balancing
    would pin a client to one pod), each server checked with GET /readyz on its agent's port (HTTP/1.1)."""
    servers = "\n".join(
        f"  server {b.name} 127.0.0.1:{b.grpc_port} proto h2 check port {b.agent_port} check-proto h1"
        for b in backends
    )
    return f"""global
  stats socket {stats_socket} mode 600 level admin
  stats timeout 30s

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout check 2s

frontend grpc
  bind 127.0.0.1:{port} proto h2
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
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> HAProxy:
        """Start on a free port (retried when the bind fails), then wait until the stats socket answers."""
        for attempt in range(_STARTS):
            self.port = free_port()
            config = self.workdir / "haproxy.cfg"
            config.write_text(render(self.backends, port=self.port, stats_socket=self.stats_socket))
            self._close_log()
            log = self._log = open(self.workdir / f"haproxy-{attempt}.log", "wb")  # noqa: SIM115 - kept open
            self.process = subprocess.Popen([self.binary, "-db", "-f", str(config)], stdout=log, stderr=log)
            if poll_until(self._up_or_exited, timeout=timeout, what="haproxy's stats socket") == "up":
                return self
        raise RuntimeError(f"haproxy did not start in {_STARTS} attempts; see {self.workdir}/haproxy-*.log")

    def _up_or_exited(self) -> str | None:
        assert self.process is not None
        if self.process.poll() is not None:
            return "exited"  # a port taken in between: the caller retries on another
        try:
            self.command("show info")
        except OSError:
            return None
        return "up"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process, 10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

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
