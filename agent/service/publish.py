"""``tfs-agent publish``: upload a SavedModel as version N, then write the manifest that marks it complete.

The manifest goes LAST: until it exists the agent treats the version as incomplete and ignores it, so a
half-finished or crashed upload can never be served (the #1 TF Serving hot-update failure,
docs/tfserving-behaviour.md#b3).
Files are uploaded in parallel with a progress bar; the manifest records each file's size and crc32c, which
the agent checks every downloaded byte against. A complete version is never overwritten without ``--force``:
TF Serving never reloads a version number it has seen (B6), so a fix should be a new version. No TensorFlow
import here — recognising a SavedModel only needs its file name.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import click
from tqdm import tqdm

from agent.adapters.sources import open_sink
from agent.adapters.sources.base import ModelSink
from agent.adapters.sources.streams import crc32c_of_file
from agent.core.domain import MANIFEST_NAME, FileEntry, Manifest
from agent.core.errors import AgentError
from agent.core.manifest import MAX_VERSION, check_layout, serialize_manifest

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class PublishError(AgentError):
    """The source directory or the destination does not allow publishing this version."""


def publish(
    src_dir: Path,
    dest_uri: str,
    version: int,
    *,
    force: bool = False,
    concurrency: int = 8,
    progress: bool = True,
    model: str | None = None,
    sink: ModelSink | None = None,
    endpoint_url: str | None = None,
) -> Manifest:
    """Upload ``src_dir`` to ``<dest_uri>/<version>/`` and write its manifest last; return the manifest."""
    if not 0 <= version <= MAX_VERSION:
        raise PublishError(f"version {version} is out of range; use an integer from 0 to 2**63-1")
    name = _model_name(model, dest_uri)
    files = collect_saved_model(src_dir)
    sink = sink if sink is not None else open_sink(dest_uri, endpoint_url=endpoint_url)
    manifest_object = f"{version}/{MANIFEST_NAME}"
    if sink.exists(manifest_object):
        if not force:
            raise PublishError(
                f"{sink.uri}/{version} is already a complete version; TF Serving never reloads a version "
                "number (B6), so publish the fix as a new --version, or pass --force to overwrite it"
            )
        sink.delete(manifest_object)  # from here until the new manifest lands, the version is incomplete
    entries = _upload_all(sink, version, files, concurrency=concurrency, progress=progress)
    manifest = Manifest(
        model=name,
        version=version,
        files=tuple(sorted(entries, key=lambda e: e.path)),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        creator=_creator(),
    )
    sink.write_bytes(manifest_object, serialize_manifest(manifest))
    return manifest


def collect_saved_model(src_dir: Path) -> list[tuple[str, Path]]:
    """The files of a SavedModel directory as (relative '/'-path, local path), refusing what could not be
    published safely."""
    if not src_dir.is_dir():
        raise PublishError(f"{src_dir} is not a directory; give the SavedModel's export directory")
    if not any((src_dir / name).is_file() for name in SAVED_MODEL_FILES):
        raise PublishError(
            f"{src_dir} is not a SavedModel: it has no saved_model.pb or saved_model.pbtxt "
            "(export it with tf.saved_model.save or model.export)"
        )
    files: list[tuple[str, Path]] = []
    for dirpath, _dirs, names in os.walk(src_dir):
        for filename in names:
            path = Path(dirpath, filename)
            if path.is_file():
                files.append((path.relative_to(src_dir).as_posix(), path))
    try:
        check_layout((FileEntry(rel, 0, "AAAAAA==") for rel, _ in files), origin=str(src_dir))
    except AgentError as err:
        raise PublishError(f"cannot publish {src_dir}: {err.reason}") from err
    return sorted(files)


def _upload_all(
    sink: ModelSink, version: int, files: list[tuple[str, Path]], *, concurrency: int, progress: bool
) -> list[FileEntry]:
    """Checksum and upload every file with ``concurrency`` in flight; the bar counts bytes on stderr."""
    total = sum(path.stat().st_size for _, path in files)
    lock = threading.Lock()
    show = progress and sys.stderr.isatty()
    with (
        tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"version {version}",
            file=sys.stderr,
            disable=not show,
        ) as bar,
        ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="publish") as pool,
    ):

        def advance(size: int) -> None:
            with lock:
                bar.update(size)

        def one(rel: str, path: Path) -> FileEntry:
            entry = FileEntry(rel, path.stat().st_size, crc32c_of_file(path))
            sink.upload(path, f"{version}/{rel}", on_bytes=advance, crc32c=entry.crc32c)
            return entry

        futures = [pool.submit(one, rel, path) for rel, path in files]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _model_name(model: str | None, dest_uri: str) -> str:
    name = model or dest_uri.rstrip("/").rsplit("/", 1)[-1]
    if not _MODEL_NAME.fullmatch(name):
        raise PublishError(f"{name!r} is not a usable model name (letters, digits, _ . -); pass --model NAME")
    return name


def _creator() -> str:
    try:
        release = package_version("tfs-agent")
    except PackageNotFoundError:
        release = "dev"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"tfs-agent {release} publish, {user}@{socket.gethostname()}"


@click.command(
    "publish",
    help=(
        "Upload the SavedModel in SRC_DIR as version N under DEST_URI (gs://bucket/prefix, "
        "s3://bucket/prefix, az://container/prefix or file:///dir), then write the manifest that marks "
        "the version complete. The agent ignores a version until its manifest exists, so an interrupted "
        "upload is never served."
    ),
)
@click.argument("src_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("dest_uri")
@click.option(
    "--version",
    "version",
    type=click.IntRange(0, MAX_VERSION),
    required=True,
    help="Version number N; the files go to DEST_URI/N/. Use a new number for every change.",
)
@click.option("--force", is_flag=True, help="Overwrite a version that is already complete (not recommended).")
@click.option(
    "--model", default=None, help="Model name recorded in the manifest [default: last part of DEST_URI]."
)
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=8, show_default=True, help="Parallel uploads."
)
@click.option(
    "--endpoint-url",
    default=None,
    help="s3://: an S3-compatible endpoint (else AWS_ENDPOINT_URL); az://: the account URL "
    "(else AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT).",
)
@click.option(
    "--no-progress", is_flag=True, help="No progress bar (it is also off when stderr is not a TTY)."
)
def publish_command(
    src_dir: Path,
    dest_uri: str,
    version: int,
    force: bool,
    model: str | None,
    concurrency: int,
    endpoint_url: str | None,
    no_progress: bool,
) -> None:
    try:
        manifest = publish(
            src_dir,
            dest_uri,
            version,
            force=force,
            concurrency=concurrency,
            progress=not no_progress,
            model=model,
            endpoint_url=endpoint_url,
        )
    except AgentError as err:
        raise click.ClickException(err.reason) from err
    size_mib = manifest.total_bytes / 2**20
    click.echo(
        f"published {dest_uri.rstrip('/')}/{version}: model {manifest.model}, {len(manifest.files)} files, "
        f"{size_mib:.1f} MiB; manifest written last"
    )
