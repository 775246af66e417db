"""One interface over every kind of bucket the agent reads, so a test runs unchanged on each scheme.

A ``Store`` wraps a running backend (a directory, fake-gcs-server, moto, Azurite) and makes fresh model
prefixes in it, the agent's own source and sink adapters for them (optionally through a ``Proxy`` in front of
the emulator, to count requests or inject faults), a raw ``put`` that skips the agent's name checks (what
another tool could write), and the environment a child process needs to reach it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import boto3

from agent.adapters.sources import azure, s3
from agent.adapters.sources.base import ModelSink, ModelSource
from agent.adapters.sources.gcs import GcsSink, GcsSource
from agent.adapters.sources.local import LocalSink, LocalSource
from agent.adapters.sources.streams import crc32c_of_bytes
from testkit.emulators import AWS_ENV, Azurite, MotoServer, azurite_connection_string
from testkit.gcs import FakeGcsServer, new_bucket

SCHEMES = ("file", "gs", "s3", "az")
HTTP_SCHEMES = ("gs", "s3", "az")


class Store(Protocol):
    scheme: str

    def new_uri(self, model: str = "m") -> str:
        """A model prefix in a bucket nobody else uses."""
        ...

    def source(self, uri: str, *, via: str | None = None, timeout: float = 60.0) -> ModelSource:
        """The agent's adapter for ``uri``, talking to ``via`` (a proxy URL) instead of the emulator."""
        ...

    def sink(self, uri: str) -> ModelSink:
        """The agent's writer for ``uri`` (what ``tfs-agent publish`` uses)."""
        ...

    def put(self, uri: str, name: str, data: bytes) -> None:
        """Write ``<uri>/<name>`` with the store's own client, no name checks, with the crc32c a
        checksum-aware tool records (``aws s3 cp --checksum-algorithm CRC32C``; ``crc32c`` blob metadata)."""
        ...

    def env(self) -> Mapping[str, str]:
        """Variables a child process needs to reach the store through ``open_source``."""
        ...

    @property
    def port(self) -> int:
        """The emulator's loopback port (0 for file://)."""
        ...


def _bucket_name() -> str:
    return f"b-{os.urandom(6).hex()}"


class FileStore:
    scheme = "file"
    port = 0

    def __init__(self, root: Path) -> None:
        self.root = root

    def new_uri(self, model: str = "m") -> str:
        path = self.root / _bucket_name() / model
        path.mkdir(parents=True)
        return f"file://{path}"

    def source(self, uri: str, *, via: str | None = None, timeout: float = 60.0) -> ModelSource:
        return LocalSource.from_uri(uri)

    def sink(self, uri: str) -> ModelSink:
        return LocalSink.from_uri(uri)

    def put(self, uri: str, name: str, data: bytes) -> None:
        path = Path(uri.removeprefix("file://")) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def env(self) -> Mapping[str, str]:
        return {}


class GcsStore:
    scheme = "gs"

    def __init__(self, server: FakeGcsServer) -> None:
        self.server = server
        self.client = server.client()

    @property
    def port(self) -> int:
        return self.server.port

    def new_uri(self, model: str = "m") -> str:
        return f"gs://{new_bucket(self.client)}/{model}"

    def source(self, uri: str, *, via: str | None = None, timeout: float = 60.0) -> ModelSource:
        client = FakeGcsServer.client_for(via) if via else self.client
        return GcsSource(uri, client=client, timeout=timeout)

    def sink(self, uri: str) -> ModelSink:
        return GcsSink(uri, client=self.client)

    def put(self, uri: str, name: str, data: bytes) -> None:
        bucket, prefix = uri.removeprefix("gs://").split("/", 1)
        self.client.bucket(bucket).blob(f"{prefix}/{name}").upload_from_string(data)

    def env(self) -> Mapping[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.server.url}


class S3Store:
    scheme = "s3"

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        self.client = self.client_for(server.url)

    @property
    def port(self) -> int:
        return self.server.port

    @staticmethod
    def client_for(url: str, timeout: float = 60.0) -> Any:
        """A client built by the agent's own ``make_client``, with the test credentials."""
        session = boto3.session.Session(
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_ENV["AWS_DEFAULT_REGION"],
        )
        return s3.make_client(url, session=session, timeout=timeout)

    def new_uri(self, model: str = "m") -> str:
        name = _bucket_name()
        self.client.create_bucket(Bucket=name)
        return f"s3://{name}/{model}"

    def source(self, uri: str, *, via: str | None = None, timeout: float = 60.0) -> ModelSource:
        client = self.client_for(via, timeout) if via else self.client
        return s3.S3Source(uri, client=client)

    def sink(self, uri: str) -> ModelSink:
        return s3.S3Sink(uri, client=self.client)

    def put(self, uri: str, name: str, data: bytes) -> None:
        bucket, prefix = uri.removeprefix("s3://").split("/", 1)
        self.client.put_object(
            Bucket=bucket,
            Key=f"{prefix}/{name}",
            Body=data,
            ChecksumAlgorithm="CRC32C",
            ChecksumCRC32C=crc32c_of_bytes(data),
        )

    def env(self) -> Mapping[str, str]:
        return self.server.env()


class AzureStore:
    scheme = "az"

    def __init__(self, server: Azurite) -> None:
        self.server = server
        self.service = azure.make_service(connection_string=server.connection_string)

    @property
    def port(self) -> int:
        return self.server.port

    def new_uri(self, model: str = "m") -> str:
        name = _bucket_name()
        self.service.create_container(name)
        return f"az://{name}/{model}"

    def source(self, uri: str, *, via: str | None = None, timeout: float = 60.0) -> ModelSource:
        service = self.service
        if via:
            service = azure.make_service(connection_string=azurite_connection_string(via), timeout=timeout)
        return azure.AzureSource(uri, service)

    def sink(self, uri: str) -> ModelSink:
        return azure.AzureSink(uri, self.service)

    def put(self, uri: str, name: str, data: bytes) -> None:
        container, prefix = uri.removeprefix("az://").split("/", 1)
        self.service.get_container_client(container).upload_blob(
            f"{prefix}/{name}", data, overwrite=True, metadata={"crc32c": crc32c_of_bytes(data)}
        )

    def env(self) -> Mapping[str, str]:
        return self.server.env()
