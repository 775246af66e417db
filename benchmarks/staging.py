"""How fast a version gets from the bucket onto the volume: ``python -m benchmarks.staging``.

Prints, for a ~200 MB version of ~20 files in fake-gcs-server on loopback:
  (a) the agent: ``stage_version`` (download + crc32c verify + write + rename), MB/s, as it runs by default
      (durable: every file and directory fsynced before the rename) and with ``durable=False``;
  (b) the machine's ceiling: raw streaming GETs of the JSON API media endpoint, 1 MiB reads, crc32c computed,
      file written, best of 1/2/4 threads; also with each file fsynced, the ceiling for durable staging;
  (c) a naive loop of ``blob.download_to_filename`` with the library's defaults.
Goals (issue 3): a/b ≥ 0.8 and a/c ≥ 3. Then (a) vs (c) through a loopback proxy adding real per-request
latency, where concurrency matters more as the file count grows. Figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import requests

from agent.adapters.sources.gcs import GcsSink, GcsSource
from agent.adapters.sources.streams import CHUNK_SIZE, fsync_path, write_chunks
from agent.core.domain import Manifest
from agent.pipeline.staging import stage_version
from agent.service.publish import publish
from tests.gcs import FakeGcsServer, Proxy, new_bucket, running_server


def make_export(root: Path, files: int, total_mb: int) -> Path:
    """A SavedModel-shaped directory with ``files`` random shards adding up to ``total_mb``."""
    root.mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(os.urandom(64 * 1024))
    (root / "variables").mkdir()
    size = total_mb * 2**20 // files
    for i in range(files - 1):
        (root / "variables" / f"variables.data-{i:05d}-of-{files - 1:05d}").write_bytes(os.urandom(size))
    return root


def best_seconds(action: Callable[[Path], None], workdir: Path, repeat: int) -> float:
    """Best wall time of ``action`` over ``repeat`` runs, each into an empty directory."""
    best = float("inf")
    for i in range(repeat):
        dest = workdir / f"run-{i}"
        dest.mkdir(parents=True)
        os.sync()  # start every run with no dirty pages from the previous one being written back
        start = time.perf_counter()
        action(dest)
        best = min(best, time.perf_counter() - start)
        shutil.rmtree(dest)
    return best


def agent_stage(
    uri: str, server_url: str, manifest: Manifest, concurrency: int, *, durable: bool = True
) -> Callable[[Path], None]:
    source = GcsSource(uri, client=FakeGcsServer.client_for(server_url))

    def run(dest: Path) -> None:
        stage_version(source, manifest, dest / "m", concurrency=concurrency, durable=durable)

    return run


def raw_get(
    server_url: str, bucket: str, names: list[str], threads: int, *, sync: bool = False
) -> Callable[[Path], None]:
    """The ceiling: plain streaming GETs of the media endpoint, 1 MiB reads, crc32c, write (and fsync)."""

    def one(session: requests.Session, name: str, dest: Path) -> None:
        url = f"{server_url}/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"
        path = dest / name.replace("/", "_")
        with session.get(url, stream=True) as response:
            response.raise_for_status()
            write_chunks(response.raw.stream(CHUNK_SIZE, decode_content=False), path)
        if sync:
            fsync_path(path)

    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=threads))

    def run(dest: Path) -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda n: one(session, n, dest), names))

    return run


def naive_loop(server_url: str, bucket: str, names: list[str]) -> Callable[[Path], None]:
    """What a first attempt looks like: one ``download_to_filename`` per object, library defaults."""

    client = FakeGcsServer.client_for(server_url)

    def run(dest: Path) -> None:
        for name in names:
            client.bucket(bucket).blob(name).download_to_filename(str(dest / name.replace("/", "_")))

    return run


def mbps(total: int, seconds: float) -> float:
    return total / seconds / 1e6


def loopback(server: FakeGcsServer, workdir: Path, args: argparse.Namespace) -> None:
    client = server.client()
    bucket = new_bucket(client)
    uri = f"gs://{bucket}/m"
    export = make_export(workdir / "export", args.files, args.size_mb)
    manifest = publish(export, uri, 1, progress=False, sink=GcsSink(uri, client=client))
    names = [f"m/1/{f.path}" for f in manifest.files]
    total, repeat = manifest.total_bytes, args.repeat

    def rate(action: Callable[[Path], None]) -> float:
        return mbps(total, best_seconds(action, workdir, repeat))

    print(f"version: {len(names)} files, {total / 1e6:.0f} MB, fake-gcs-server on loopback, best of {repeat}")
    print(f"{'':44} {'concurrency ' + str(args.concurrency):>15} {'best of 2/4/8':>14}")
    agent: dict[bool, tuple[float, float]] = {}
    for durable in (True, False):
        rates = {n: rate(agent_stage(uri, server.url, manifest, n, durable=durable)) for n in (2, 4, 8)}
        rates.setdefault(args.concurrency, rate(agent_stage(uri, server.url, manifest, args.concurrency)))
        agent[durable] = (rates[args.concurrency], max(rates.values()))
    b = max(rate(raw_get(server.url, bucket, names, t)) for t in (1, 2, 4))
    b_sync = max(rate(raw_get(server.url, bucket, names, t, sync=True)) for t in (1, 2, 4))
    c = rate(naive_loop(server.url, bucket, names))
    for label, durable in (
        ("(a)  agent, durable (the default: fsync)", True),
        ("(a') agent, durable=False", False),
    ):
        print(f"{label:44} {agent[durable][0]:10.0f} MB/s {agent[durable][1]:9.0f} MB/s")
    print(f"{'(b)  raw GET + crc32c + write, 1/2/4 threads':44} {'':15} {b:9.0f} MB/s")
    print(f"{'(b`) the same + fsync of each file':44} {'':15} {b_sync:9.0f} MB/s")
    print(f"{'(c)  naive blob.download_to_filename loop':44} {c:10.0f} MB/s")
    (a_default, a_best), (f_default, f_best) = agent[True], agent[False]
    print(
        f"a/b` = {a_default / b_sync:.2f} ({a_best / b_sync:.2f} best)   a'/b = {f_default / b:.2f} ", end=""
    )
    print(f"({f_best / b:.2f} best)   goal >= 0.8")
    print(f"a/c  = {a_default / c:.1f}   a'/c = {f_default / c:.1f}   goal >= 3")


def with_latency(server: FakeGcsServer, workdir: Path, args: argparse.Namespace) -> None:
    client = server.client()
    print(
        f"\nwith {args.latency_ms} ms added per request by a loopback proxy; {args.latency_mb} MB a version:"
    )
    for files in (5, 20, 80):
        bucket = new_bucket(client)
        uri = f"gs://{bucket}/m"
        export = make_export(workdir / f"export-{files}", files, args.latency_mb)
        manifest = publish(export, uri, 1, progress=False, sink=GcsSink(uri, client=client))
        names = [f"m/1/{f.path}" for f in manifest.files]
        with Proxy(server.port, delay=args.latency_ms / 1000) as proxy:
            a_s = best_seconds(agent_stage(uri, proxy.url, manifest, args.concurrency), workdir, 1)
            c_s = best_seconds(naive_loop(proxy.url, bucket, names), workdir, 1)
        total = manifest.total_bytes
        print(
            f"  {files:3d} files: (a) {mbps(total, a_s):6.0f} MB/s in {a_s:5.2f}s   "
            f"(c) {mbps(total, c_s):6.0f} MB/s in {c_s:5.2f}s   a/c = {c_s / a_s:4.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=30)
    parser.add_argument("--latency-mb", type=int, default=40)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-staging-") as tmp,
        running_server(Path(tmp) / "gcs") as server,
    ):
        loopback(server, Path(tmp), args)
        with_latency(server, Path(tmp), args)


if __name__ == "__main__":
    main()
