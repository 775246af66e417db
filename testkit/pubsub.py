"""The real Pub/Sub emulator (Debian package google-cloud-cli-pubsub-emulator, a Java program) on its own
loopback port and directory, for tests and benchmarks.

It keeps no state across a restart: ``restart()`` brings it back empty on the same port, as a real outage
of the emulator would, and ``create_topic`` is the operator's part (the topic GCS notifies), which the tests
redo after a restart. Clients reach it through ``PUBSUB_EMULATOR_HOST=host_port``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testkit.poll import poll_until
from testkit.ports import free_port, port_open
from testkit.servers import terminate

EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
PROJECT, TOPIC = "p-test", "gcs-events"
START_TIMEOUT = 90.0  # a JVM start on a loaded 2-core machine


def emulator_missing() -> str | None:
    """Why the emulator cannot run here, or None."""
    if not EMULATOR.exists():
        return f"{EMULATOR} missing: apt-get install google-cloud-cli-pubsub-emulator"
    if shutil.which("java") is None:
        return "java missing: apt-get install default-jre-headless"
    return None


class PubSubEmulator:
    """One emulator process; ``topic_path`` is the topic fake-gcs-server publishes to."""

    def __init__(self, workdir: Path, *, port: int | None = None, project: str = PROJECT) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.project = project
        self.log_path = workdir / "pubsub-emulator.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": self.host_port, "PUBSUB_PROJECT_ID": self.project}

    def topic_path(self, topic: str = TOPIC) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def start(self) -> PubSubEmulator:
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        args = [str(EMULATOR), "--host=127.0.0.1", f"--port={self.port}"]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=data, start_new_session=True
            )
        process = self._process

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"pubsub emulator exited: {self.log_path.read_text()[-2000:]}")
            return port_open(self.port)

        try:
            poll_until(
                listening, timeout=START_TIMEOUT, interval=0.05, what=f"the pubsub emulator on {self.port}"
            )
        except AssertionError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout=10)

    def restart(self) -> None:
        """Stop and start on the same port: everything (topics, subscriptions) is gone."""
        self.stop()
        self.start()

    def publisher(self) -> Any:
        """A PublisherClient bound to this emulator (the environment is set only while it is built)."""
        from google.cloud import pubsub_v1

        with _env(self.env):
            return pubsub_v1.PublisherClient()

    def subscriber(self) -> Any:
        from google.cloud import pubsub_v1

        with _env(self.env):
            return pubsub_v1.SubscriberClient()

    def create_topic(self, topic: str = TOPIC) -> str:
        """The operator's topic (GCS notifications go there); returns its path."""
        path = self.topic_path(topic)
        client = self.publisher()
        client.create_topic(request={"name": path}, timeout=30)
        return path

    def publish(self, attributes: dict[str, str], topic: str = TOPIC, data: bytes = b"{}") -> None:
        """One message with GCS-notification attributes, as a bucket (or a late redelivery) would send."""
        client = self.publisher()
        client.publish(self.topic_path(topic), data, **attributes).result(timeout=30)

    def subscriptions(self) -> list[str]:
        client = self.publisher()
        return list(client.list_topic_subscriptions(request={"topic": self.topic_path()}, timeout=30))


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def running_emulator(workdir: Path) -> Iterator[PubSubEmulator]:
    """A started emulator with the test topic, stopped on exit."""
    emulator = PubSubEmulator(workdir).start()
    try:
        emulator.create_topic()
        yield emulator
    finally:
        emulator.stop()
