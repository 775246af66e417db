"""What polling a bucket costs: ``python -m benchmarks.poll_cost`` (``--restart``: the first poll after one).

Counts the HTTP requests sent to fake-gcs-server (through a counting loopback proxy) for one poll of a
model whose bucket holds 1, 10 and 100 complete versions of 50 files each: the first poll (which reads each
new version's manifest once) and an idle poll (nothing new). Goal (issue 3): an idle poll costs ≤ 2
requests per model and stays flat as the bucket grows. For contrast it also prints what listing every object
costs, which is what TF Serving does when pointed at a gs:// base path (every second, by default).

``--restart`` times the first poll of a fresh Discovery (an agent just restarted) over 200 complete versions,
on file:// and on gs:// (fake-gcs-server, through the counting proxy, with no added latency and with 20 ms per
request, about a small GCS read from inside the region): bucket requests and seconds when the manifests are
read one after another (``concurrency=1``, as before), ``READ_CONCURRENCY`` at a time (now) and twice that.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.adapters.sources.base import ModelSource, ObjectInfo
from agent.adapters.sources.gcs import GcsSink, GcsSource
from agent.adapters.sources.local import LocalSink, LocalSource
from agent.core.domain import MANIFEST_NAME
from agent.core.manifest import serialize_manifest
from agent.infra.config_policy import parse_completion
from agent.pipeline.discovery import READ_CONCURRENCY, Discovery
from testkit.fakes_sources import manifest_for
from testkit.gcs import FakeGcsServer, Proxy, new_bucket, object_requests, running_server

FILES_PER_VERSION = 50


RESTART_VERSIONS = 200
RESTART_FILES = 3


def fill(sink: GcsSink | LocalSink, versions: int, files_per_version: int = FILES_PER_VERSION) -> None:
    """``versions`` complete versions of ``files_per_version`` small files, each manifest written last."""
    files = {f"variables/shard-{i:03d}": b"w" * 64 for i in range(files_per_version - 1)}
    files["saved_model.pb"] = b"graph"

    def one_version(version: int) -> None:
        for name, data in files.items():
            sink.write_bytes(f"{version}/{name}", data)
        sink.write_bytes(f"{version}/{MANIFEST_NAME}", serialize_manifest(manifest_for("m", version, files)))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one_version, range(1, versions + 1)))


def measure(proxy: Proxy, action: Callable[[], object]) -> int:
    """How many requests went through ``proxy`` while ``action()`` ran."""
    before = len(proxy.requests)
    action()
    return len(proxy.requests) - before


class CountingSource:
    """A ``ModelSource`` that counts the calls made to the one it wraps (file:// has no proxy to count)."""

    def __init__(self, inner: ModelSource) -> None:
        self.inner, self.calls = inner, Counter[str]()
        self.uri = inner.uri

    def list_versions(self) -> frozenset[int]:
        self.calls["list_versions"] += 1
        return self.inner.list_versions()

    def list_objects(self, version: int) -> tuple[ObjectInfo, ...]:
        self.calls["list_objects"] += 1
        return self.inner.list_objects(version)

    def read_bytes(self, version: int, name: str) -> bytes:
        self.calls["read_bytes"] += 1
        return self.inner.read_bytes(version, name)

    def download(self, version: int, name: str, dest: Path) -> str:
        self.calls["download"] += 1
        return self.inner.download(version, name, dest)


def first_poll(source: ModelSource, concurrency: int, requests: Callable[[], int]) -> tuple[int, float, int]:
    """(requests, seconds, complete versions) of a fresh Discovery's first poll."""
    discovery = Discovery(source, parse_completion("manifest"), model="m", concurrency=concurrency)
    before, start = requests(), time.perf_counter()
    found = discovery.poll()
    return requests() - before, time.perf_counter() - start, len(found.complete)


def restart() -> None:
    print(__doc__.split("\n\n")[2].replace("\n", " ") + "\n")
    print(f"{'bucket':<26} | {'concurrency':>11} | {'requests':>8} | {'seconds':>7} | complete")
    rounds = (1, READ_CONCURRENCY, 2 * READ_CONCURRENCY)
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        root = Path(tmp) / "file" / "m"
        root.mkdir(parents=True)
        fill(LocalSink(root), RESTART_VERSIONS, RESTART_FILES)
        for concurrency in rounds:
            local = CountingSource(LocalSource(root))
            n, seconds, complete = first_poll(local, concurrency, lambda s=local: sum(s.calls.values()))
            print(f"{'file://':<26} | {concurrency:>11} | {n:>8} | {seconds:>7.2f} | {complete}")
        with running_server(Path(tmp) / "gcs") as server, Proxy(server.port) as proxy:
            bucket = new_bucket(server.client())
            uri = f"gs://{bucket}/m"
            fill(GcsSink(uri, client=server.client()), RESTART_VERSIONS, RESTART_FILES)
            for delay in (0.0, 0.02):
                proxy.delay = delay
                label = f"gs:// fake-gcs +{delay * 1000:.0f} ms/req"
                for concurrency in rounds:
                    client = FakeGcsServer.client_for(proxy.url)
                    source = GcsSource(uri, client=client)
                    n, seconds, complete = first_poll(
                        source, concurrency, lambda: len(object_requests(proxy.requests))
                    )
                    print(f"{label:<26} | {concurrency:>11} | {n:>8} | {seconds:>7.2f} | {complete}")
    print("Requests: 1 listing + 1 manifest read per version either way; concurrency cuts the round trips")
    print(
        "waited for one after another, not the requests. A shared, loaded 2-core machine: seconds are noisy."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restart", action="store_true", help="the first pass after a restart only")
    if parser.parse_args().restart:
        restart()
        return
    print(__doc__.split("\n\n")[1].replace("\n", " ") + "\n")
    print(
        f"{'versions':>8} {'objects':>8} | {'first poll':>10} | {'idle poll':>9} | {'list every object':>17}"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp,
        running_server(Path(tmp) / "gcs") as server,
        Proxy(server.port) as proxy,
    ):
        client = FakeGcsServer.client_for(proxy.url)
        for versions in (1, 10, 100):
            bucket = new_bucket(server.client())
            uri = f"gs://{bucket}/m"
            fill(GcsSink(uri, client=server.client()), versions)
            discovery = Discovery(GcsSource(uri, client=client), parse_completion("manifest"))
            first = measure(proxy, discovery.poll)
            idle = measure(proxy, discovery.poll)
            everything = measure(proxy, lambda b=bucket: list(client.list_blobs(b, prefix="m/")))
            objects = versions * (FILES_PER_VERSION + 1)
            print(f"{versions:>8} {objects:>8} | {first:>6} req | {idle:>5} req | {everything:>12} req*")
    print("* fake-gcs-server answers in one page; GCS pages at 1000 objects: ceil(objects / 1000) requests,")
    print("  and TF Serving pointed at gs:// repeats that every second. First poll = 1 listing + 1 manifest")
    print("  read per new version (each read once, then cached) + the client's one-time bucket metadata GET;")
    print("  an idle poll is the listing alone.")


if __name__ == "__main__":
    main()
