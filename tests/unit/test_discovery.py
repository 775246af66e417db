"""Discovery: which versions are complete under each completion mode, and what an idle poll costs.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import threading

import pytest

from agent.core.domain import MANIFEST_NAME
from agent.core.errors import ConfigError, TransientSourceError
from agent.infra.clock import ManualClock
from agent.infra.config_policy import CompletionSettings, parse_completion
from agent.pipeline.discovery import Discovery
from testkit.fakes_sources import InMemorySource

FILES = {
    "saved_model.pb": b"graph",
    "variables/variables.index": b"idx",
    "variables/variables.data": b"x" * 100,
}


def _discovery(source: InMemorySource, completion: str = "manifest", model: str | None = None) -> Discovery:
    return Discovery(source, parse_completion(completion), clock=source.clock, model=model)


def test_manifest_mode_reports_complete_incomplete_and_invalid() -> None:
    """A version with a good manifest is complete, one without is incomplete, a bad one is invalid."""
    source = InMemorySource()
    good = source.publish(1, FILES)
    source.put(2, "saved_model.pb", b"half-uploaded")
    source.publish(3, FILES)
    source.put(3, MANIFEST_NAME, b"{not json")
    result = _discovery(source).poll()
    assert dict(result.complete) == {1: good}
    assert result.incomplete == {2}
    assert set(result.invalid) == {3}
    assert "not valid UTF-8 JSON" in result.invalid[3]
    assert result.newest_complete == 1


def test_an_idle_poll_is_one_listing_and_reads_no_manifest() -> None:
    """Once versions are judged, a poll costs one delimited listing however many versions exist."""
    source = InMemorySource()
    for version in range(1, 21):
        source.publish(version, FILES)
    discovery = _discovery(source)
    discovery.poll()
    assert source.calls["read_bytes"] == 20
    source.calls.clear()
    result = discovery.poll()
    assert len(result.complete) == 20
    assert dict(source.calls) == {"list_versions": 1}


def test_an_incomplete_version_is_rechecked_until_its_manifest_lands() -> None:
    """A version without a manifest costs one read per poll and turns complete when the manifest arrives."""
    source = InMemorySource()
    source.put(4, "saved_model.pb", b"graph")
    discovery = _discovery(source)
    assert discovery.poll().incomplete == {4}
    manifest = source.publish(4, {"saved_model.pb": b"graph"})
    source.calls.clear()
    assert dict(discovery.poll().complete) == {4: manifest}
    assert source.calls["read_bytes"] == 1


def test_manifest_for_another_model_or_folder_is_invalid() -> None:
    """The manifest's model must be this model and its version must equal the folder."""
    source = InMemorySource()
    source.publish(1, FILES, model="other")
    other = source.publish(2, FILES)
    source.put(5, MANIFEST_NAME, source.objects[(2, MANIFEST_NAME)][0])
    result = _discovery(source, model="half").poll()
    assert "is for model 'other', not 'half'" in result.invalid[1]
    assert "says version 2 but sits in folder 5" in result.invalid[5]
    assert dict(result.complete) == {2: other}


def test_an_invalid_version_is_not_judged_again_until_it_leaves_the_bucket() -> None:
    """Like TF Serving (B6), a bad version stays bad; if it disappears and returns, it is judged afresh."""
    source = InMemorySource()
    source.put(1, MANIFEST_NAME, b"[]")
    discovery = _discovery(source)
    assert 1 in discovery.poll().invalid
    source.calls.clear()
    assert 1 in discovery.poll().invalid
    assert source.calls["read_bytes"] == 0
    source.remove_version(1)
    assert discovery.poll().invalid == {}
    manifest = source.publish(1, FILES)
    assert dict(discovery.poll().complete) == {1: manifest}


def test_a_transient_error_fails_the_poll_and_the_next_poll_recovers() -> None:
    """A bucket error while reading a manifest propagates; nothing is cached wrongly."""
    source = InMemorySource()
    manifest = source.publish(1, FILES)
    source.fail("read_bytes", MANIFEST_NAME, TransientSourceError("503"))
    discovery = _discovery(source)
    with pytest.raises(TransientSourceError):
        discovery.poll()
    assert dict(discovery.poll().complete) == {1: manifest}


def test_marker_mode_waits_for_the_marker_and_synthesizes_a_manifest() -> None:
    """With marker:_SUCCESS a version is complete once _SUCCESS exists; files come from the listing."""
    source = InMemorySource()
    for name, data in FILES.items():
        source.put(7, name, data)
    discovery = _discovery(source, "marker:_SUCCESS", model="m")
    assert discovery.poll().incomplete == {7}
    source.put(7, "_SUCCESS", b"")
    manifest = discovery.poll().complete[7]
    assert {f.path for f in manifest.files} == set(FILES)
    assert manifest.model == "m"
    assert manifest.total_bytes == sum(len(d) for d in FILES.values())
    source.calls.clear()
    discovery.poll()
    assert dict(source.calls) == {"list_versions": 1}


def test_marker_mode_refuses_hostile_object_names() -> None:
    """A listed object named with '..' makes the version invalid, naming the object."""
    source = InMemorySource()
    source.put(1, "saved_model.pb", b"g")
    source.put(1, "../../escape", b"evil")
    source.put(1, "_SUCCESS", b"")
    result = _discovery(source, "marker:_SUCCESS").poll()
    assert "'../../escape'" in result.invalid[1]


def test_quiet_mode_waits_for_an_unchanged_listing() -> None:
    """With quiet:60s a version is complete once its listing stayed the same for 60 s of clock time."""
    clock = ManualClock()
    source = InMemorySource(clock=clock)
    source.put(2, "saved_model.pb", b"graph")
    discovery = _discovery(source, "quiet:60s")
    assert discovery.poll().incomplete == {2}
    clock.advance(30)
    source.put(2, "variables/variables.data", b"more")
    assert discovery.poll().incomplete == {2}
    clock.advance(59)
    assert discovery.poll().incomplete == {2}
    clock.advance(1)
    assert {f.path for f in discovery.poll().complete[2].files} == {
        "saved_model.pb",
        "variables/variables.data",
    }


def test_quiet_mode_lists_a_candidate_once_per_poll_then_stops() -> None:
    """A candidate's objects are listed once per poll until quiet; after that polls are one listing."""
    clock = ManualClock()
    source = InMemorySource(clock=clock)
    source.put(2, "saved_model.pb", b"graph")
    discovery = _discovery(source, "quiet:10s")
    for _ in range(3):
        discovery.poll()
        clock.advance(4)
    assert source.calls["list_objects"] == 3
    discovery.poll()
    source.calls.clear()
    discovery.poll()
    assert dict(source.calls) == {"list_versions": 1}


def test_quiet_mode_ignores_old_update_times() -> None:
    """Old mtimes (cp -p, rsync -a, tar) do not shorten the quiet period: it starts at first sight."""
    clock = ManualClock()
    source = InMemorySource(clock=clock)
    source.put(2, "saved_model.pb", b"graph")
    clock.advance(3600)
    discovery = _discovery(source, "quiet:120s")
    assert discovery.poll().incomplete == {2}
    clock.advance(120)
    assert 2 in discovery.poll().complete


def test_incomplete_modes_need_their_argument() -> None:
    """A marker mode without a name or a quiet mode without a duration is a ConfigError."""
    with pytest.raises(ConfigError, match="marker"):
        Discovery(InMemorySource(), CompletionSettings(mode="marker"))
    with pytest.raises(ConfigError, match="quiet"):
        Discovery(InMemorySource(), CompletionSettings(mode="quiet"))


def test_quiet_deadline_follows_the_last_change() -> None:
    """The quiet deadline is when the waiting version will be quiet: it moves with each change, and is
    gone once the version is complete (so a notified agent can run a pass exactly then)."""
    clock = ManualClock()
    source = InMemorySource(clock=clock)
    discovery = _discovery(source, "quiet:60s")
    assert discovery.quiet_deadline() is None
    source.put(2, "saved_model.pb", b"graph")
    discovery.poll()
    assert discovery.quiet_deadline() == clock.now + 60
    clock.advance(30)
    source.put(2, "variables/variables.data", b"more")
    discovery.poll()
    assert discovery.quiet_deadline() == clock.now + 60
    clock.advance(60)
    assert 2 in discovery.poll().complete
    assert discovery.quiet_deadline() is None


class _GatedSource(InMemorySource):
    """Reads that wait at a barrier: a poll that reads one version at a time never gets ``parties`` reads
    in flight together, and the barrier breaks (BrokenBarrierError) instead of passing. Counts the most
    reads in flight at once, and can fail the read of chosen versions."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=30)
        self.reading = self.most_reading = 0
        self.failing: dict[int, Exception] = {}
        self._gauge = threading.Lock()

    def read_bytes(self, version: int, name: str) -> bytes:
        with self._gauge:
            self.reading += 1
            self.most_reading = max(self.most_reading, self.reading)
        try:
            self.barrier.wait()
            if version in self.failing:
                raise self.failing[version]
            return super().read_bytes(version, name)
        finally:
            with self._gauge:
                self.reading -= 1


def test_a_first_poll_reads_many_manifests_at_once_and_no_more_than_its_concurrency() -> None:
    """After a restart every version is new: their manifests are read ``concurrency`` at a time (the barrier
    only opens for 4 reads in flight together), never more, each exactly once, with the same verdicts as
    one by one."""
    source = _GatedSource(parties=4)
    for version in range(1, 41):
        source.publish(version, FILES)
    source.put(13, MANIFEST_NAME, b"{not json")
    result = Discovery(source, parse_completion("manifest"), clock=source.clock, concurrency=4).poll()
    assert source.most_reading == 4
    assert source.calls["read_bytes"] == 40
    assert sorted(result.complete) == [v for v in range(1, 41) if v != 13]
    assert set(result.invalid) == {13}


def test_a_failed_read_in_a_concurrent_poll_keeps_the_versions_before_it() -> None:
    """A bucket error on one version fails the poll as before; the versions below it were judged and are
    not read again, the ones from it on are read on the next poll."""
    source = _GatedSource(parties=1)
    for version in range(1, 31):
        source.publish(version, FILES)
    source.failing[17] = TransientSourceError("503 on version 17")
    discovery = Discovery(source, parse_completion("manifest"), clock=source.clock, concurrency=4)
    with pytest.raises(TransientSourceError, match="version 17"):
        discovery.poll()
    del source.failing[17]
    source.calls.clear()
    assert sorted(discovery.poll().complete) == list(range(1, 31))
    assert source.calls["read_bytes"] == 14


def test_marker_mode_lists_new_versions_concurrently_with_the_same_verdicts() -> None:
    """Marker mode's listings go through the same pool: complete, incomplete, hostile versions as before."""
    source = InMemorySource()
    for version in range(1, 21):
        for name, data in FILES.items():
            source.put(version, name, data)
        if version % 2:
            source.put(version, "_SUCCESS", b"")
    source.put(7, "../escape", b"evil")
    result = _discovery(source, "marker:_SUCCESS").poll()
    assert sorted(result.complete) == [v for v in range(1, 21, 2) if v != 7]
    assert result.incomplete == frozenset(range(2, 21, 2))
    assert "'../escape'" in result.invalid[7]
    assert source.calls["list_objects"] == 20


def test_concurrency_must_be_positive() -> None:
    """A concurrency below 1 is refused, naming the value."""
    with pytest.raises(ValueError, match="at least 1, got 0"):
        Discovery(InMemorySource(), parse_completion("manifest"), concurrency=0)
