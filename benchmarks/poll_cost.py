"""What polling a bucket costs: ``python -m benchmarks.poll_cost``.

Counts the HTTP requests sent to fake-gcs-server (through a counting loopback proxy) for one poll of a
model whose bucket holds 1, 10 and 100 complete versions of 50 files each: the first poll (which reads each
new version's manifest once) and an idle poll (nothing new). Goal (issue 3): an idle poll costs ≤ 2
requests per model and stays flat as the bucket grows. For contrast it also prints what listing every object
costs, which is what TF Serving does when pointed at a gs:// base path (every second, by default).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.adapters.sources.gcs import GcsSink, GcsSource
from agent.core.domain import MANIFEST_NAME
from agent.core.manifest import serialize_manifest
from agent.infra.config_policy import parse_completion
from agent.pipeline.discovery import Discovery
from testkit.fakes_sources import manifest_for
from testkit.gcs import FakeGcsServer, Proxy, new_bucket, running_server

FILES_PER_VERSION = 50


def fill(sink: GcsSink, versions: int) -> None:
    """``versions`` complete versions of FILES_PER_VERSION small files, each manifest written last."""
    files = {f"variables/shard-{i:03d}": b"w" * 64 for i in range(FILES_PER_VERSION - 1)}
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


def main() -> None:
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
