"""Getting a version onto the volume TF Serving reads: complete and verified, or not at all.

TF Serving loads any integer folder it finds under ``base_path`` (docs/tfserving-behaviour.md#b3) and never
retries one that failed (B6), so the one promise here is: **no integer directory that is not a verified copy
ever appears**. A version is downloaded into ``<local_path>/.staging-<N>-<random>`` (a name TF Serving
ignores), each file's size and crc32c checked against the manifest as it streams in, fsynced, and only then
renamed to ``<local_path>/<N>`` in one atomic step. Any failure removes the staging directory; a crash leaves
only dot-directories, which ``clean_staging`` removes at start.

Transient source errors are retried here, with one policy for every source (``sources/retrying.py``:
exponential backoff with full jitter, bounded total time); permanent ones (404, 403, a checksum mismatch, an
unsafe object name) fail the candidate at once with a reason naming the object.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from agent.adapters.sources.base import ModelSource
from agent.adapters.sources.retrying import Retry, call_with_retry, retry_policy
from agent.adapters.sources.streams import crc32c_of_file, fsync_path
from agent.core.domain import MANIFEST_NAME, FileEntry, Manifest
from agent.core.errors import (
    AgentError,
    ChecksumMismatchError,
    DiskSpaceError,
    ManifestError,
    UnsafePathError,
    volume_error,
)
from agent.core.manifest import (
    check_layout,
    check_name,
    parse_manifest,
    serialize_manifest,
    version_from_name,
)
from agent.pipeline.volume import VolumeLimit
from agent.pipeline.volume import mib as _mib

log = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"
REMOVING_PREFIX = ".removing-"
"""Dot-names TF Serving ignores: a version being written, or one on its way out (renamed, then deleted)."""

DEFAULT_RESERVE_BYTES = 64 * 1024 * 1024
"""Free space kept beyond the version's size: room for directory metadata, the manifest, and whatever else
writes to the volume meanwhile, so staging never fills it to the last byte."""

_T = TypeVar("_T")

Progress = Callable[[str, int], None]
"""Called from a worker thread after each file is downloaded and verified: (path in the version, bytes)."""


@dataclass(frozen=True)
class StagedVersion:
    """A version ready at ``path``: how many bytes were downloaded and the seconds each phase took."""

    version: int
    path: Path
    bytes: int
    download_seconds: float
    verify_seconds: float
    reused: bool = False


def stage_version(
    source: ModelSource,
    manifest: Manifest,
    local_path: Path,
    *,
    concurrency: int = 8,
    retry: Retry | None = None,
    progress: Progress | None = None,
    reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    durable: bool = True,
    volume: VolumeLimit | None = None,
) -> StagedVersion:
    """Copy ``manifest``'s version from ``source`` to ``<local_path>/<version>``, verified; reuse a verified
    copy already there. Raises a StagingError, ManifestError or SourceError naming the cause.

    ``durable`` fsyncs every file and directory before the rename, so a power cut cannot leave a renamed
    version with missing data; it costs the disk's sync speed (see benchmarks/staging.py).

    ``volume`` refuses the version (DiskSpaceError, before any download) when it would not fit under the
    volume's size limit beside what is already there."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    check_layout(manifest.files, origin=f"{source.uri}/{manifest.version}/")
    final = local_path / str(manifest.version)
    started = time.monotonic()
    _guard_os(lambda: local_path.mkdir(parents=True, exist_ok=True), f"creating {local_path}")
    replace = final.exists() or final.is_symlink()
    if replace:
        problem = check_local(local_path, manifest.version, expected=manifest)
        if problem is None:
            return StagedVersion(manifest.version, final, 0, 0.0, time.monotonic() - started, reused=True)
        log.warning("replacing %s, which is not a verified copy: %s", final, problem)
    retry = retry if retry is not None else retry_policy()
    with volume.reserve(manifest, local_path) if volume is not None else nullcontext():
        _check_listing(source, manifest, retry)
        _check_space(local_path, manifest, reserve_bytes)
        staging = local_path / f"{STAGING_PREFIX}{manifest.version}-{secrets.token_hex(4)}"
        transfer = _Transfer(source, manifest.version, staging, retry, progress, durable)
        checked = time.monotonic()
        try:
            _guard_os(staging.mkdir, f"creating {staging}")
            transfer.fetch_all(manifest.files, concurrency)
            downloaded = time.monotonic()
            _guard_os(lambda: transfer.commit(final, manifest, replace=replace), f"installing {final}")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return StagedVersion(
        manifest.version, final, manifest.total_bytes, downloaded - checked, checked - started
    )


def _check_listing(source: ModelSource, manifest: Manifest, retry: Retry) -> None:
    """One listing before any download: every listed file is there with the manifest's size and crc32c."""
    where = f"{source.uri}/{manifest.version}/"
    listed = {
        o.name: o for o in call_with_retry(retry, f"listing {where}", source.list_objects, manifest.version)
    }
    missing = [f.path for f in manifest.files if f.path not in listed]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ManifestError(f"{where}: the manifest lists {shown}, which the bucket lacks; publish it again")
    for entry in manifest.files:
        found = listed[entry.path]
        if found.size != entry.size or (found.crc32c is not None and found.crc32c != entry.crc32c):
            raise ChecksumMismatchError(
                f"{where}{entry.path}: the bucket holds size {found.size} crc32c {found.crc32c}, the "
                f"manifest says size {entry.size} crc32c {entry.crc32c}; it changed after publishing — "
                "publish a new version"
            )


def _check_space(local_path: Path, manifest: Manifest, reserve_bytes: int) -> None:
    free = shutil.disk_usage(local_path).free
    needed = manifest.total_bytes + reserve_bytes
    if free < needed:
        raise DiskSpaceError(
            f"{local_path}: version {manifest.version} needs {_mib(manifest.total_bytes)} plus "
            f"{_mib(reserve_bytes)} headroom but {_mib(free)} is free; lower keep_versions or grow the volume"
        )


@dataclass(frozen=True)
class _Transfer:
    """What the file downloads of one version share; ``failed`` stops files that have not started yet."""

    source: ModelSource
    version: int
    staging: Path
    retry: Retry
    progress: Progress | None
    durable: bool
    failed: threading.Event = field(default_factory=threading.Event)

    def fetch_all(self, files: Sequence[FileEntry], concurrency: int) -> None:
        """Every file with at most ``concurrency`` in flight, largest first; the first failure cancels what
        has not started and is raised once the running ones end."""
        ordered = sorted(files, key=lambda f: (-f.size, f.path))
        with ThreadPoolExecutor(
            max_workers=min(concurrency, len(ordered)), thread_name_prefix="stage"
        ) as pool:
            futures = [pool.submit(self.fetch, entry) for entry in ordered]
            try:
                for future in as_completed(futures):
                    future.result()
            except BaseException:
                self.failed.set()
                for future in futures:
                    future.cancel()
                raise

    def fetch(self, entry: FileEntry) -> None:
        """Download one file (retrying transient errors), check size and crc32c, sync it."""
        if self.failed.is_set():
            return
        what = f"{self.source.uri}/{self.version}/{entry.path}"
        dest = _inside(self.staging, entry.path)
        _guard_os(lambda: dest.parent.mkdir(parents=True, exist_ok=True), f"creating {dest.parent}")
        download = self.source.download
        crc = _guard_os(
            lambda: call_with_retry(
                self.retry, f"downloading {what}", download, self.version, entry.path, dest
            ),
            f"writing {dest}",
        )
        size = dest.stat().st_size
        if size != entry.size:
            raise ChecksumMismatchError(f"{what}: downloaded {size} bytes, the manifest says {entry.size}")
        if crc != entry.crc32c:
            raise ChecksumMismatchError(f"{what}: crc32c {crc} differs from the manifest's {entry.crc32c}")
        self._sync(dest)
        if self.progress is not None:
            self.progress(entry.path, size)

    def commit(self, final: Path, manifest: Manifest, *, replace: bool) -> None:
        """Manifest in, everything synced, then one rename makes the version visible to TF Serving."""
        (self.staging / MANIFEST_NAME).write_bytes(serialize_manifest(manifest))
        self._sync(self.staging / MANIFEST_NAME)
        for dirpath, _dirs, _files in os.walk(self.staging, topdown=False):
            self._sync(Path(dirpath))
        if replace:
            aside = final.with_name(f"{REMOVING_PREFIX}{final.name}-{secrets.token_hex(4)}")
            os.rename(final, aside)
            os.rename(self.staging, final)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(self.staging, final)
        self._sync(final.parent)

    def _sync(self, path: Path) -> None:
        if self.durable:
            _guard_os(lambda: fsync_path(path), f"syncing {path}")


def _inside(root: Path, name: str) -> Path:
    """``root/name`` after the name check, and refused if it still resolves outside ``root``."""
    dest = root.joinpath(*check_name(name, where=str(root)).split("/"))
    if not dest.resolve().is_relative_to(root.resolve()):
        raise UnsafePathError(f"refusing object {name!r}: it resolves outside {root}")
    return dest


def check_local(
    local_path: Path, version: int, *, expected: Manifest | None = None, checksums: bool = True
) -> str | None:
    """Why ``<local_path>/<version>`` is not a verified copy (of ``expected``, if given), or None if it is.

    Checks the stored manifest, then every listed file's size and (with ``checksums``) crc32c; extra files
    (e.g. warmup data the agent adds) are allowed."""
    folder = local_path / str(version)
    if folder.is_symlink() or not folder.is_dir():
        return f"{folder} is not a directory"
    try:
        stored = parse_manifest((folder / MANIFEST_NAME).read_bytes(), origin=str(folder / MANIFEST_NAME))
    except (OSError, AgentError) as err:
        return f"no readable manifest: {err}"
    if stored.version != version:
        return f"its manifest is for version {stored.version}"
    if expected is not None and set(stored.files) != set(expected.files):
        return "it holds different files than the bucket's manifest lists"
    for entry in stored.files:
        problem = _file_problem(folder, entry, checksums=checksums)
        if problem:
            return problem
    return None


def verify_local(local_path: Path, version: int, *, checksums: bool = True) -> bool:
    """Whether ``<local_path>/<version>`` still matches its stored manifest: sizes, and crc32c unless
    ``checksums`` is False (which reads no file contents: cheap enough to call on every pass)."""
    problem = check_local(local_path, version, checksums=checksums)
    if problem:
        log.warning("version %s at %s does not verify: %s", version, local_path, problem)
    return problem is None


def _file_problem(folder: Path, entry: FileEntry, *, checksums: bool) -> str | None:
    try:
        path = _inside(folder, entry.path)
        if path.is_symlink() or not path.is_file():
            return f"{entry.path} is missing or not a regular file"
        size = path.stat().st_size
        if size != entry.size:
            return f"{entry.path} has {size} bytes, the manifest says {entry.size}"
        crc = crc32c_of_file(path) if checksums else entry.crc32c
    except (OSError, UnsafePathError) as err:
        return f"{entry.path}: {err}"
    return None if crc == entry.crc32c else f"{entry.path} has crc32c {crc}, the manifest says {entry.crc32c}"


def clean_staging(local_path: Path) -> list[Path]:
    """Remove staging and half-removed directories a crash left behind; run once at start."""
    removed: list[Path] = []
    if not local_path.is_dir():
        return removed
    for entry in sorted(local_path.iterdir()):
        if (
            entry.name.startswith((STAGING_PREFIX, REMOVING_PREFIX))
            and entry.is_dir()
            and not entry.is_symlink()
        ):
            _guard_os(partial(shutil.rmtree, entry), f"removing {entry}")
            removed.append(entry)
    return removed


def local_versions(local_path: Path) -> frozenset[int]:
    """The integer version directories under ``local_path`` (canonical names only, as staging writes them)."""
    if not local_path.is_dir():
        return frozenset()
    found = (version_from_name(p.name) for p in local_path.iterdir() if p.is_dir() and not p.is_symlink())
    return frozenset(v for v in found if v is not None)


def prune_versions(local_path: Path, *, protect: Collection[int], keep: int) -> list[int]:
    """Remove the oldest version directories so that ``keep`` remain, never one in ``protect`` (the serving,
    rollback and in-flight versions); protected ones count toward ``keep``. Returns the removed versions."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    present = sorted(local_versions(local_path), reverse=True)
    survivors = {v for v in present if v in protect}
    for version in present:
        if len(survivors) >= keep:
            break
        survivors.add(version)
    removed = sorted(set(present) - survivors)
    for version in removed:
        folder = local_path / str(version)
        aside = local_path / f"{REMOVING_PREFIX}{version}-{secrets.token_hex(4)}"
        _guard_os(partial(os.rename, folder, aside), f"removing {folder}")
        shutil.rmtree(aside, ignore_errors=True)
    return removed


def _guard_os(action: Callable[[], _T], what: str) -> _T:
    """Local filesystem errors as the agent's (``volume_error``), naming the path."""
    try:
        return action()
    except OSError as err:
        raise volume_error(err, what) from err
