"""Which versions in the bucket are complete: the answer to TF Serving loading half-uploaded versions.

TF Serving treats a version as present as soon as any object exists under ``N/``
(docs/tfserving-behaviour.md#b3); the agent only offers a version once its completion signal is there
(docs/architecture.md#completion-contract):

- ``manifest`` (default): ``N/tfs-agent-manifest.json``, written last by ``tfs-agent publish``;
- ``marker:<name>``: the marker object exists; the manifest is synthesized from the listing;
- ``quiet:<duration>``: the version's listing has not changed for that long since the agent first saw it;
  synthesized likewise.

Polling must stay cheap however large the bucket grows (the naive polling TF Serving does costs a listing of
every object, every second): an idle poll is ONE delimited listing. A version's manifest is read (or its
objects listed) only until it is seen complete or invalid; both outcomes are cached and, as in TF Serving
(B6), a version is not re-judged by itself: a fix comes as a new version number, or the operator clears
the version after fixing it in place (``forget``).

A poll with many versions not judged yet (the first after a restart: every version in the bucket) reads
them ``concurrency`` at a time: each read is a small object and costs a round trip, so 200 versions take
25 round trips instead of 200 (docs/decisions/0029-read-new-manifests-concurrently.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from agent.adapters.sources.base import ModelSource, ObjectInfo, ObjectNotFoundError
from agent.core.domain import MANIFEST_NAME, FileEntry, Manifest
from agent.core.errors import ConfigError, ManifestError, StagingError
from agent.core.manifest import check_layout, parse_manifest
from agent.infra.clock import Clock, SystemClock
from agent.infra.config_policy import CompletionSettings

READ_CONCURRENCY = 8
"""Versions read at once by a poll that has many to judge (nothing is spawned on an idle poll). 8: 200
versions in 25 round trips, and a marker/quiet listing on s3:// runs 8 HeadObjects of its own, so 8 × 8 stays
within the 64 connections an adapter keeps (``POOL_SIZE``)."""

_Fetched = bytes | tuple[ObjectInfo, ...] | ManifestError | StagingError | None
"""What judging a version needs from the bucket: its manifest's bytes (None: not there yet) or its listing,
or the error that already makes it invalid."""


@dataclass(frozen=True)
class DiscoveryResult:
    """One poll's view of the bucket: every version folder present is in exactly one of the three."""

    complete: Mapping[int, Manifest] = field(default_factory=lambda: MappingProxyType({}))
    incomplete: frozenset[int] = frozenset()
    invalid: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    """Version → reason (bad manifest, hostile object name, ...): the candidate fails, and stays failed."""

    @property
    def newest_complete(self) -> int | None:
        return max(self.complete, default=None)


@dataclass(frozen=True)
class _Quiet:
    fingerprint: tuple[tuple[str, int, str | None, float | None], ...]
    since: float


class Discovery:
    """Per-model discovery with the completion mode of its settings; call ``poll()`` once per pass."""

    def __init__(
        self,
        source: ModelSource,
        completion: CompletionSettings,
        *,
        clock: Clock | None = None,
        model: str | None = None,
        concurrency: int = READ_CONCURRENCY,
    ) -> None:
        """``model`` is the configured name; a manifest may carry it or the source folder's name (publish's
        default). ``clock.time()`` gives epoch seconds, compared with object update times in quiet mode.
        ``concurrency``: how many versions' manifests (or listings) one poll reads at once."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if completion.mode == "marker" and not completion.marker:
            raise ConfigError("completion marker mode needs a marker name, e.g. marker:_SUCCESS")
        if completion.mode == "quiet" and completion.quiet is None:
            raise ConfigError("completion quiet mode needs a duration, e.g. quiet:120s")
        folder = source.uri.rstrip("/").rsplit("/", 1)[-1]
        self._source, self._completion, self._clock = source, completion, clock or SystemClock()
        self._model = model or folder
        self._names = frozenset({self._model, folder})
        self._quiet_seconds = completion.quiet.total_seconds() if completion.quiet else 0.0
        self._concurrency = concurrency
        self._complete: dict[int, Manifest] = {}
        self._invalid: dict[int, str] = {}
        self._quiet: dict[int, _Quiet] = {}

    def poll(self) -> DiscoveryResult:
        """List the bucket once and judge versions not judged before; SourceError if it is unreadable."""
        present = self._source.list_versions()
        self._forget(present)
        incomplete: set[int] = set()
        for version, fetched in self._fetch_all(
            sorted(present - self._complete.keys() - self._invalid.keys())
        ):
            try:
                manifest = self._judge(version, fetched)
            except (ManifestError, StagingError) as err:
                self._invalid[version] = err.reason
                continue
            if manifest is None:
                incomplete.add(version)
            else:
                self._complete[version] = manifest
        return DiscoveryResult(
            complete=MappingProxyType(dict(self._complete)),
            incomplete=frozenset(incomplete),
            invalid=MappingProxyType(dict(self._invalid)),
        )

    def forget(self, version: int) -> None:
        """Judge ``version`` afresh on the next poll (an operator cleared it after fixing it in place)."""
        for cache in (self._complete, self._invalid, self._quiet):
            cache.pop(version, None)

    def _forget(self, present: frozenset[int]) -> None:
        """A version that left the bucket is judged afresh if it comes back (re-uploaded)."""
        for cache in (self._complete, self._invalid, self._quiet):
            for version in cache.keys() - present:
                del cache[version]

    def _fetch_all(self, versions: Sequence[int]) -> Iterator[tuple[int, _Fetched]]:
        """Each version with what was read for it, in order; the reads run ``concurrency`` at a time. A
        failed read (a bucket error) raises here, after the versions before it were yielded (and judged and
        kept, as if read one by one); the reads not started yet are cancelled."""
        if not versions:
            return
        workers = min(self._concurrency, len(versions))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="discover") as pool:
            futures = [pool.submit(self._fetch, version) for version in versions]
            try:
                for version, future in zip(versions, futures, strict=True):
                    yield version, future.result()
            finally:
                for future in futures:
                    future.cancel()

    def _fetch(self, version: int) -> _Fetched:
        """The bucket read that judging ``version`` needs; runs on the pool and touches no state. A version
        the read itself shows invalid (a hostile object name) comes back as its error, judged in order."""
        try:
            if self._completion.mode != "manifest":
                return self._source.list_objects(version)
            try:
                return self._source.read_bytes(version, MANIFEST_NAME)
            except ObjectNotFoundError:
                return None
        except (ManifestError, StagingError) as err:
            return err

    def _judge(self, version: int, fetched: _Fetched) -> Manifest | None:
        if fetched is None:
            return None
        if isinstance(fetched, (ManifestError, StagingError)):
            raise fetched
        if isinstance(fetched, bytes):
            return self._parse_manifest(version, fetched)
        objects = [o for o in fetched if not o.name.endswith("/")]
        if self._completion.mode == "marker":
            marker = self._completion.marker
            if not any(o.name == marker for o in objects):
                return None
            return self._synthesize(version, [o for o in objects if o.name != marker])
        return self._synthesize(version, objects) if self._is_quiet(version, objects) else None

    def _parse_manifest(self, version: int, data: bytes) -> Manifest:
        where = f"{self._source.uri}/{version}/{MANIFEST_NAME}"
        manifest = parse_manifest(data, origin=where)
        if manifest.version != version:
            raise ManifestError(f"{where}: says version {manifest.version} but sits in folder {version}")
        if manifest.model not in self._names:
            raise ManifestError(
                f"{where}: is for model {manifest.model!r}, not {self._model!r}; "
                f"publish with --model {self._model}"
            )
        return manifest

    def _is_quiet(self, version: int, objects: Sequence[ObjectInfo]) -> bool:
        """Quiet once the listing is unchanged for the duration, counted from when this agent first saw it
        as it is now. Object update times are not trusted: ``cp -p``, ``rsync -a`` and ``tar`` keep old
        mtimes on files still being copied, so a restart waits one quiet period again."""
        if not objects:
            return False
        now = self._clock.time()
        fingerprint = tuple(sorted((o.name, o.size, o.crc32c, o.updated) for o in objects))
        seen = self._quiet.get(version)
        if seen is None or seen.fingerprint != fingerprint:
            seen = self._quiet[version] = _Quiet(fingerprint, now)
        return now - seen.since >= self._quiet_seconds

    def quiet_deadline(self) -> float | None:
        """When the earliest version still waiting in quiet mode will have been quiet long enough (epoch
        seconds; None: none waits), so a pass woken by a change can be followed by one at that time."""
        judged = self._complete.keys() | self._invalid.keys()
        waiting = [q.since for v, q in self._quiet.items() if v not in judged]
        return min(waiting) + self._quiet_seconds if waiting else None

    def _synthesize(self, version: int, objects: Sequence[ObjectInfo]) -> Manifest:
        """A manifest from the listing (sizes and crc32c), for buckets that carry none."""
        where = f"{self._source.uri}/{version}/"
        files = tuple(
            _entry(o, where) for o in sorted(objects, key=lambda o: o.name) if o.name != MANIFEST_NAME
        )
        if not files:
            raise ManifestError(f"{where}: the version holds no files besides its completion marker")
        check_layout(files, origin=where)
        updated = [o.updated for o in objects if o.updated is not None]
        created = datetime.fromtimestamp(max(updated), UTC).isoformat() if updated else ""
        return Manifest(
            model=self._model,
            version=version,
            files=files,
            created=created,
            creator=f"tfs-agent discovery ({self._completion.mode})",
        )


def _entry(info: ObjectInfo, where: str) -> FileEntry:
    if info.crc32c is None:
        raise ManifestError(
            f"{where}{info.name}: the source reports no crc32c, so the copy could not be checked"
        )
    return FileEntry(path=info.name, size=info.size, crc32c=info.crc32c)
