"""How fast a version gets from the bucket onto the volume: ``python -m benchmarks.staging [--scheme S]``.

Prints, for a ~200 MB version of ~20 files in the scheme's emulator on loopback (``gs`` fake-gcs-server, the
default; ``s3`` moto_server; ``az`` Azurite; ``file`` a local directory):
  (a) the agent: ``stage_version`` (download + crc32c verify + write + rename) through the scheme's adapter,
      MB/s, as it runs by default (durable: every file and directory fsynced before the rename) and with
      ``durable=False``;
  (b) the ceiling on the same emulator: raw streaming HTTP GETs of each object (no SDK: S3 presigned URLs,
      an Azure public container; for file://, plain reads), 1 MiB reads, crc32c computed, file written, best
      of 1/2/4/8 threads (the agent: best of concurrency 1/2/4/8 too); also with each file fsynced, the
      ceiling for durable staging;
  (c) gs only: a naive loop of ``blob.download_to_filename`` with the library's defaults.
Goals: a/b ≥ 0.9 on every scheme (issue 17; 0.8 on gs in issue 3) and a/c ≥ 3. Then, gs only, (a) vs (c)
through a loopback proxy adding real per-request latency. Figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests

from agent.adapters.sources.base import ModelSource
from agent.adapters.sources.gcs import GcsSource
from agent.adapters.sources.s3 import S3Source
from agent.adapters.sources.streams import CHUNK_SIZE, fsync_path, read_chunks, write_chunks
from agent.core.domain import Manifest
from agent.pipeline.staging import stage_version
from agent.service.publish import publish
from testkit.emulators import AZURITE_ACCOUNT, Azurite, MotoServer, running
from testkit.gcs import FakeGcsServer, Proxy, new_bucket, running_server
from testkit.stores import AzureStore, FileStore, GcsStore, S3Store, Store

Action = Callable[[Path], None]
THREADS = (1, 2, 4, 8)  # downloads in flight: the agent's concurrency and the ceiling's threads alike


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


def agent_stage(source: ModelSource, manifest: Manifest, concurrency: int, *, durable: bool = True) -> Action:
    def run(dest: Path) -> None:
        stage_version(source, manifest, dest / "m", concurrency=concurrency, durable=durable)

    return run


def raw_get(urls: list[str], threads: int, *, sync: bool = False) -> Action:
    """The ceiling: plain streaming GETs of each object, 1 MiB reads, crc32c, write (and fsync)."""

    def one(session: requests.Session, url: str, dest: Path) -> None:
        path = dest / quote(url, safe="")[-100:]
        with session.get(url, stream=True) as response:
            response.raise_for_status()
            write_chunks(response.raw.stream(CHUNK_SIZE, decode_content=False), path)
        if sync:
            fsync_path(path)

    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=max(threads, 10)))

    def run(dest: Path) -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda u: one(session, u, dest), urls))

    return run


def raw_copy(paths: list[Path], threads: int, *, sync: bool = False) -> Action:
    """The file:// ceiling: plain 1 MiB reads of each file, crc32c, write (and fsync)."""

    def one(path: Path, dest: Path) -> None:
        target = dest / path.name
        write_chunks(read_chunks(path), target)
        if sync:
            fsync_path(target)

    def run(dest: Path) -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda p: one(p, dest), paths))

    return run


@dataclass
class Setup:
    """One scheme's published version: the agent's source for it and the ceiling measured the same way."""

    label: str
    source: ModelSource
    manifest: Manifest
    raw: Callable[[int, bool], Action]
    """(threads, fsync each file) → the raw copy of every object of the version."""
    gcs: FakeGcsServer | None = None
    """gs only: the emulator, for the naive-loop and latency comparisons."""


def published(store: Store, workdir: Path, args: argparse.Namespace) -> tuple[str, Manifest]:
    uri = store.new_uri()
    export = make_export(workdir / "export", args.files, args.size_mb)
    return uri, publish(export, uri, 1, progress=False, sink=store.sink(uri))


@contextmanager
def scheme_setup(scheme: str, workdir: Path, args: argparse.Namespace) -> Iterator[Setup]:
    """Start the scheme's emulator, publish the version through the agent's sink, yield what to measure."""
    with ExitStack() as stack:
        if scheme == "file":
            store: Store = FileStore(workdir / "bucket")
            label = "a local directory"
        elif scheme == "s3":
            store = S3Store(stack.enter_context(running(MotoServer(workdir / "moto"))))
            label = "moto_server on loopback"
        elif scheme == "az":
            store = AzureStore(stack.enter_context(running(Azurite(workdir / "azurite"))))
            label = "Azurite on loopback"
        else:
            store = GcsStore(stack.enter_context(running_server(workdir / "gcs")))
            label = "fake-gcs-server on loopback"
        uri, manifest = published(store, workdir, args)
        gcs = store.server if isinstance(store, GcsStore) else None
        source = store.source(uri)
        if isinstance(store, S3Store):  # as the agent opens it for manifest completion (the default)
            source = S3Source(uri, client=store.client, listing_checksums=False)
        yield Setup(label, source, manifest, _raw(store, uri, manifest), gcs)


def _raw(store: Store, uri: str, manifest: Manifest) -> Callable[[int, bool], Action]:
    """The plain-HTTP (or plain-file) URL of every object of version 1 under ``uri``."""
    bucket, prefix = uri.split("://", 1)[1].split("/", 1)
    keys = [f"{prefix}/1/{f.path}" for f in manifest.files]
    if isinstance(store, FileStore):
        paths = [Path(uri.removeprefix("file://")) / "1" / f.path for f in manifest.files]
        return lambda threads, sync: raw_copy(paths, threads, sync=sync)
    if isinstance(store, GcsStore):
        base = f"{store.server.url}/download/storage/v1/b/{bucket}/o/"
        urls = [f"{base}{quote(k, safe='')}?alt=media" for k in keys]
    elif isinstance(store, S3Store):  # presigned: plain GETs, the signature in the query string
        urls = [
            store.client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": k})
            for k in keys
        ]
    else:
        assert isinstance(store, AzureStore)
        store.service.get_container_client(bucket).set_container_access_policy({}, public_access="blob")
        urls = [f"{store.server.url}/{AZURITE_ACCOUNT}/{bucket}/{quote(k)}" for k in keys]
    return lambda threads, sync: raw_get(urls, threads, sync=sync)


def naive_loop(server_url: str, bucket: str, names: list[str]) -> Callable[[Path], None]:
    """What a first attempt looks like: one ``download_to_filename`` per object, library defaults."""

    client = FakeGcsServer.client_for(server_url)

    def run(dest: Path) -> None:
        for name in names:
            client.bucket(bucket).blob(name).download_to_filename(str(dest / name.replace("/", "_")))

    return run


def mbps(total: int, seconds: float) -> float:
    return total / seconds / 1e6


def loopback(setup: Setup, workdir: Path, args: argparse.Namespace, naive: Action | None) -> None:
    manifest = setup.manifest
    total, repeat = manifest.total_bytes, args.repeat

    def rate(action: Action) -> float:
        return mbps(total, best_seconds(action, workdir, repeat))

    files = len(manifest.files)
    print(f"version: {files} files, {total / 1e6:.0f} MB, {setup.label}, best of {repeat}")
    print(f"{'':44} {'concurrency ' + str(args.concurrency):>15} {'best of 1/2/4/8':>14}")
    agent: dict[bool, tuple[float, float]] = {}
    for durable in (True, False):
        rates = {n: rate(agent_stage(setup.source, manifest, n, durable=durable)) for n in THREADS}
        if args.concurrency not in rates:
            rates[args.concurrency] = rate(
                agent_stage(setup.source, manifest, args.concurrency, durable=durable)
            )
        agent[durable] = (rates[args.concurrency], max(rates.values()))
    b = max(rate(setup.raw(t, False)) for t in THREADS)
    b_sync = max(rate(setup.raw(t, True)) for t in THREADS)
    for label, durable in (
        ("(a)  agent, durable (the default: fsync)", True),
        ("(a') agent, durable=False", False),
    ):
        print(f"{label:44} {agent[durable][0]:10.0f} MB/s {agent[durable][1]:9.0f} MB/s")
    raw = "raw read" if args.scheme == "file" else "raw GET"
    print(f"{'(b)  ' + raw + ' + crc32c + write, 1/2/4/8 threads':44} {'':15} {b:9.0f} MB/s")
    print(f"{'(b`) the same + fsync of each file':44} {'':15} {b_sync:9.0f} MB/s")
    (a_default, a_best), (f_default, f_best) = agent[True], agent[False]
    print(
        f"a/b` = {a_default / b_sync:.2f} ({a_best / b_sync:.2f} best)   a'/b = {f_default / b:.2f} ", end=""
    )
    print(f"({f_best / b:.2f} best)   goal >= 0.9")
    if naive is not None:
        c = rate(naive)
        print(f"{'(c)  naive blob.download_to_filename loop':44} {c:10.0f} MB/s")
        print(f"a/c  = {a_default / c:.1f}   a'/c = {f_default / c:.1f}   goal >= 3")


def with_latency(server: FakeGcsServer, workdir: Path, args: argparse.Namespace) -> None:
    client = server.client()
    print(
        f"\nwith {args.latency_ms} ms added per request by a loopback proxy; {args.latency_mb} MB a version:"
    )
    store = GcsStore(server)
    for files in (5, 20, 80):
        bucket = new_bucket(client)
        uri = f"gs://{bucket}/m"
        export = make_export(workdir / f"export-{files}", files, args.latency_mb)
        manifest = publish(export, uri, 1, progress=False, sink=store.sink(uri))
        names = [f"m/1/{f.path}" for f in manifest.files]
        with Proxy(server.port, delay=args.latency_ms / 1000) as proxy:
            source = GcsSource(uri, client=FakeGcsServer.client_for(proxy.url))
            a_s = best_seconds(agent_stage(source, manifest, args.concurrency), workdir, 1)
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
    parser.add_argument("--scheme", choices=("gs", "s3", "az", "file"), default="gs")
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=30)
    parser.add_argument("--latency-mb", type=int, default=40)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-staging-") as tmp,
        scheme_setup(args.scheme, Path(tmp), args) as setup,
    ):
        server = setup.gcs
        if server is None:
            loopback(setup, Path(tmp), args, None)
            return
        bucket, prefix = setup.source.uri.removeprefix("gs://").split("/", 1)
        names = [f"{prefix}/1/{f.path}" for f in setup.manifest.files]
        loopback(setup, Path(tmp), args, naive_loop(server.url, bucket, names))
        with_latency(server, Path(tmp), args)


if __name__ == "__main__":
    main()
