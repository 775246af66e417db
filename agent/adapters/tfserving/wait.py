"""Wait until TF Serving has loaded the wanted versions, or say why not.

ReloadConfig returns at once for changes to existing models and loads them at the next file-system poll
(docs/tfserving-behaviour.md#b12), so "the config was accepted" never means "the version serves". The only
truth is GetModelStatus: AVAILABLE is success, END is a failed load with the error in its status (B14), and
while TF Serving restarts the status call itself is UNAVAILABLE — that is waited out, not fatal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from agent.core.domain import VersionState, VersionStatus
from agent.core.errors import LoadFailedError, LoadTimeoutError, ServingUnavailableError
from agent.infra.clock import Clock, SystemClock

POLL_SECONDS = 0.1
"""TF Serving's manager acts once per ~100 ms tick (B5); polling faster only adds RPCs."""


class StatusSource(Protocol):
    """The part of ServingControl waiting needs."""

    def status(self, name: str) -> Sequence[VersionStatus]: ...


def wait_for_versions(
    control: StatusSource,
    name: str,
    versions: Iterable[int],
    *,
    timeout: float,
    clock: Clock | None = None,
    poll: float = POLL_SECONDS,
) -> Mapping[int, VersionStatus]:
    """Poll GetModelStatus until every wanted version of ``name`` is AVAILABLE; return their statuses.

    Raises LoadFailedError (with TF Serving's message) as soon as one reaches END with an error,
    LoadTimeoutError when the deadline passes with a version not yet AVAILABLE, ServingUnavailableError when
    the last status call before the deadline could not reach the server.
    """
    clock = clock or SystemClock()
    wanted = sorted(set(versions))
    deadline = clock.monotonic() + timeout
    last: Mapping[int, VersionStatus] = {}
    unreachable: ServingUnavailableError | None = None
    while True:
        try:
            last = {s.version: s for s in control.status(name) if s.version in wanted}
            unreachable = None
        except ServingUnavailableError as err:
            unreachable = err
        else:
            _raise_if_ended(name, wanted, last)
            if all(v in last and last[v].state is VersionState.AVAILABLE for v in wanted):
                return last
        if clock.monotonic() >= deadline:
            raise _timed_out(name, wanted, last, unreachable, timeout)
        clock.sleep(poll)


def _raise_if_ended(name: str, wanted: list[int], seen: Mapping[int, VersionStatus]) -> None:
    # END *without* an error is not a verdict: TF Serving keeps END rows of unloaded versions forever (B15),
    # so a version re-added to an existing model shows its old END until the next file-system poll loads it.
    for version in wanted:
        status = seen.get(version)
        if status is not None and status.failed:
            raise LoadFailedError(f"version {version} of {name} failed to load: {status.error}")


def _timed_out(
    name: str,
    wanted: list[int],
    seen: Mapping[int, VersionStatus],
    unreachable: ServingUnavailableError | None,
    timeout: float,
) -> Exception:
    if unreachable is not None:
        return ServingUnavailableError(
            f"TF Serving unreachable for {timeout:g}s while waiting for {name}: {unreachable}"
        )
    states = ", ".join(f"{v}: {seen[v].state.name if v in seen else 'not listed'}" for v in wanted)
    return LoadTimeoutError(f"{name} versions not AVAILABLE after {timeout:g}s ({states})")


def wait_unloaded(
    control: StatusSource,
    name: str,
    *,
    timeout: float,
    clock: Clock | None = None,
    poll: float = POLL_SECONDS,
) -> bool:
    """Poll until no version of ``name`` is loaded or loading any more (every row END, or none); True if so.

    Removing a model returns at once and the unload runs later (B11). Waiting for it keeps a shadow's memory
    from overlapping the swap that follows, and keeps a quick re-add of the same name from meeting the old
    unload's END in ReloadConfig (B12). An unreachable server or the deadline gives False: never fatal.
    """
    clock = clock or SystemClock()
    deadline = clock.monotonic() + timeout
    while True:
        try:
            if all(s.state is VersionState.END for s in control.status(name)):
                return True
        except ServingUnavailableError:
            return False
        if clock.monotonic() >= deadline:
            return False
        clock.sleep(poll)
