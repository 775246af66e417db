"""The S3 and Azure Blob emulators as real processes on loopback, for tests and benchmarks.

``MotoServer`` runs moto's ``moto_server`` (PyPI ``moto[server]``); ``Azurite`` runs the npm package's
``azurite-blob`` (installed by ``make azurite`` into .venv/node, or found on PATH) with
``--skipApiVersionCheck`` (Azurite refuses current azure-storage-blob API versions otherwise),
``--disableTelemetry`` and ``--inMemoryPersistence``. Each picks a free port and tries another if the bind
loses a race with a neighbour. The process environment is never changed: ``env()`` gives the variables a
child process (the agent, ``tfs-agent publish``) needs to reach the emulator.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from testkit.poll import poll_until
from testkit.ports import free_port
from testkit.servers import REPO_ROOT, terminate

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""Credentials moto accepts; any value works, but botocore refuses to sign a request without some."""
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (  # Azurite's documented, public development key
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_BIND_ATTEMPTS = 5
_E = TypeVar("_E", bound="_Process")


def azurite_connection_string(url: str) -> str:
    """The connection string for Azurite's development account at ``url`` (``http://127.0.0.1:port``)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={url}/{AZURITE_ACCOUNT};"
    )


class _Process:
    """One emulator process on a free loopback port; subclasses say how to start it and probe it."""

    name = "emulator"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.log_path = workdir / f"{self.name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, port: int) -> Sequence[str]:
        raise NotImplementedError

    def probe(self) -> bool:
        """True once the emulator answers HTTP."""
        try:
            with urllib.request.urlopen(self.url + "/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # an error status is an answer
        except (urllib.error.URLError, OSError):
            return False

    def start(self, *, timeout: float = 60.0) -> None:
        """Start on a free port; a lost bind race (the process exits at once) tries another port."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(_BIND_ATTEMPTS):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    self.command(self.port), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
                )
            if self._wait_ready(timeout):
                return
        raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout=10)

    def _wait_ready(self, timeout: float) -> bool:
        """True once the probe answers; False if the process exited (e.g. its port was taken)."""
        exited: list[bool] = []

        def answered() -> bool:
            assert self._process is not None
            if self._process.poll() is not None:
                exited.append(True)
                return True
            return self.probe()

        try:
            poll_until(answered, timeout=timeout, interval=0.05, what=f"{self.name} to answer on {self.url}")
        except AssertionError:
            self.stop()
            raise RuntimeError(f"{self.name} did not answer on {self.url} within {timeout}s") from None
        if exited:
            self._process = None
            return False
        return True


class MotoServer(_Process):
    """moto's S3 (and everything else it mocks) as ``moto_server``; state lives in memory."""

    name = "moto"

    def command(self, port: int) -> Sequence[str]:
        return [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]

    def env(self) -> dict[str, str]:
        """What a child process needs to reach this server through the standard AWS variables."""
        return {**AWS_ENV, "AWS_ENDPOINT_URL": self.url}


class Azurite(_Process):
    """Azurite's Blob service; state lives in memory."""

    name = "azurite"

    def command(self, port: int) -> Sequence[str]:
        return [
            azurite_binary(),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ]

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.url)

    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}


def azurite_binary() -> str:
    """``azurite-blob`` from .venv/node (``make azurite``) or PATH; a clear error naming the fix if absent."""
    local = REPO_ROOT / ".venv" / "node" / "node_modules" / ".bin" / "azurite-blob"
    found = str(local) if local.exists() else shutil.which("azurite-blob")
    if found is None:
        raise RuntimeError(
            "azurite-blob not found: run `make azurite` (needs Node.js/npm) or `npm install -g azurite`"
        )
    return found


@contextmanager
def running(emulator: _E) -> Iterator[_E]:
    """A started emulator, stopped on exit."""
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
