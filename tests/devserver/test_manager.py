"""The aspired-versions manager in-process, with a fake loader (B5, B6, B14, B16, B17).

Ticks are driven by the test (the manager thread is not started), so every step is explicit.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from testkit.poll import poll_until
from tfs_devserver.manager import Manager, ManagerOptions
from tfs_devserver.monitor import ManagerState, ServableState, StateMonitor
from tfs_devserver.status import Code, ServingError


class FakeServable:
    """Stands in for a loaded SavedModel."""

    def __init__(self, name: str, version: int) -> None:
        self.name = name
        self.version = version
        self.closed = False

    def close(self) -> None:
        """Record that the manager released it (the real one closes its Session)."""
        self.closed = True


class FakeLoader:
    """Counts loads; versions in ``fail`` raise, versions in ``hold`` wait for their event."""

    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()
        self.fail: dict[int, ServingError] = {}
        self.hold: dict[int, threading.Event] = {}

    def __call__(self, name: str, version: int, path: str) -> Any:
        self.calls[version] += 1
        if version in self.hold:
            self.hold[version].wait(30)
        if version in self.fail:
            raise self.fail[version]
        return FakeServable(name, version)


class Recorder:
    """Every published state, in order."""

    def __init__(self, monitor: StateMonitor) -> None:
        self.events: list[ServableState] = []
        original = monitor.publish

        def publish(state: ServableState) -> None:
            self.events.append(state)
            original(state)

        monitor.publish = publish  # type: ignore[method-assign]

    def states(self, version: int) -> list[str]:
        return [e.state.name for e in self.events if e.version == version]


@pytest.fixture
def loader() -> FakeLoader:
    return FakeLoader()


@pytest.fixture
def monitor() -> StateMonitor:
    return StateMonitor()


@pytest.fixture
def manager(loader: FakeLoader, monitor: StateMonitor) -> Iterator[Manager]:
    options = ManagerOptions(max_num_load_retries=2, load_retry_interval_seconds=0.01)
    result = Manager(loader=loader, monitor=monitor, options=options)
    yield result
    result.stop()


def tick_until(manager: Manager, monitor: StateMonitor, version: int, state: ManagerState) -> None:
    """Tick until ``m`` ``version`` reaches ``state``."""

    def reached() -> bool:
        manager.tick()
        current = monitor.get("m", version)
        return current is not None and current.state is state

    poll_until(reached, timeout=10, interval=0.005, what=f"v{version} {state.name}")


def test_states_go_start_loading_available(manager: Manager, monitor: StateMonitor) -> None:
    """B14: an aspired version is published START, then LOADING, then AVAILABLE."""
    recorder = Recorder(monitor)
    manager.set_aspired("m", {1: "/m/1"})
    tick_until(manager, monitor, 1, ManagerState.AVAILABLE)
    assert recorder.states(1) == ["START", "LOADING", "AVAILABLE"]


def test_new_version_loads_before_old_unloads(
    manager: Manager, monitor: StateMonitor, loader: FakeLoader
) -> None:
    """B5: the replacement loads while the old version serves; the old one unloads only after."""
    recorder = Recorder(monitor)
    manager.set_aspired("m", {1: "/m/1"})
    tick_until(manager, monitor, 1, ManagerState.AVAILABLE)
    loader.hold[2] = threading.Event()
    manager.set_aspired("m", {2: "/m/2"})
    tick_until(manager, monitor, 2, ManagerState.LOADING)
    for _ in range(5):
        manager.tick()
    with manager.handle("m", None) as servable:
        assert servable.version == 1
    loader.hold[2].set()
    tick_until(manager, monitor, 1, ManagerState.END)
    order = [(e.version, e.state.name) for e in recorder.events]
    assert order.index((2, "AVAILABLE")) < order.index((1, "UNLOADING"))


def test_failed_version_keeps_old_and_is_never_retried(
    manager: Manager, monitor: StateMonitor, loader: FakeLoader
) -> None:
    """B5/B6/B14: a failing replacement retries, ends with its error; the old one serves; no reload."""
    recorder = Recorder(monitor)
    manager.set_aspired("m", {1: "/m/1"})
    tick_until(manager, monitor, 1, ManagerState.AVAILABLE)
    loader.fail[2] = ServingError(Code.DATA_LOSS, "corrupt")
    manager.set_aspired("m", {1: "/m/1", 2: "/m/2"})
    tick_until(manager, monitor, 2, ManagerState.END)
    assert loader.calls[2] == 3  # one attempt plus max_num_load_retries=2
    assert recorder.states(2) == ["START", "LOADING", "END"]
    state = monitor.get("m", 2)
    assert state is not None
    assert state.error is not None
    assert str(state.error) == "DATA_LOSS: corrupt"
    for _ in range(5):
        manager.set_aspired("m", {1: "/m/1", 2: "/m/2"})
        manager.tick()
    assert loader.calls[2] == 3
    with manager.handle("m", None) as servable:
        assert servable.version == 1


def test_unaspiring_cancels_retries(monitor: StateMonitor, loader: FakeLoader) -> None:
    """B6: a version removed while it waits to retry stops retrying and ends."""
    manager = Manager(
        loader=loader,
        monitor=monitor,
        options=ManagerOptions(max_num_load_retries=5, load_retry_interval_seconds=60),
    )
    try:
        loader.fail[1] = ServingError(Code.NOT_FOUND, "missing")
        manager.set_aspired("m", {1: "/m/1"})
        tick_until(manager, monitor, 1, ManagerState.LOADING)
        poll_until(lambda: loader.calls[1] == 1, what="first attempt")
        manager.set_aspired("m", {})
        tick_until(manager, monitor, 1, ManagerState.END)
        assert loader.calls[1] == 1
    finally:
        manager.stop()


def test_unload_drains_in_flight_requests(manager: Manager, monitor: StateMonitor) -> None:
    """B17: an unloading version leaves routing at once; its Session closes only after its requests finish."""
    manager.set_aspired("m", {1: "/m/1"})
    tick_until(manager, monitor, 1, ManagerState.AVAILABLE)
    with manager.handle("m", 1) as servable:
        manager.set_aspired("m", {})
        tick_until(manager, monitor, 1, ManagerState.UNLOADING)
        with pytest.raises(ServingError) as missing:
            manager.handle("m", 1).__enter__()
        assert missing.value.message == "Servable not found for request: Specific(m, 1)"
        for _ in range(5):
            manager.tick()
        assert monitor.get("m", 1).state is ManagerState.UNLOADING  # type: ignore[union-attr]
        assert servable.version == 1
        assert not servable.closed  # type: ignore[attr-defined]
    tick_until(manager, monitor, 1, ManagerState.END)
    assert servable.closed  # type: ignore[attr-defined]


def test_not_found_messages(manager: Manager, monitor: StateMonitor) -> None:
    """B16: no servable gives NOT_FOUND naming Latest(m) or Specific(m, v)."""
    for version, text in ((None, "Latest(m)"), (3, "Specific(m, 3)")):
        with pytest.raises(ServingError) as error, manager.handle("m", version):
            pass
        assert (error.value.code, error.value.message) == (
            Code.NOT_FOUND,
            f"Servable not found for request: {text}",
        )


def test_reaspired_version_waits_for_its_unload_then_reloads(
    manager: Manager, monitor: StateMonitor, loader: FakeLoader
) -> None:
    """B5: re-aspiring a version still unloading is postponed until it is gone, then it loads again."""
    recorder = Recorder(monitor)
    manager.set_aspired("m", {1: "/m/1"})
    tick_until(manager, monitor, 1, ManagerState.AVAILABLE)
    with manager.handle("m", 1):
        manager.set_aspired("m", {})
        tick_until(manager, monitor, 1, ManagerState.UNLOADING)
        manager.set_aspired("m", {1: "/m/1"})
        for _ in range(5):
            manager.tick()
        assert recorder.states(1)[-1] == "UNLOADING"
    tick_until(manager, monitor, 1, ManagerState.AVAILABLE)
    assert recorder.states(1) == [
        "START",
        "LOADING",
        "AVAILABLE",
        "UNLOADING",
        "END",
        "START",
        "LOADING",
        "AVAILABLE",
    ]
    assert loader.calls[1] == 2


def test_latest_routes_to_highest_available(manager: Manager, monitor: StateMonitor) -> None:
    """B16: with several versions AVAILABLE, a request without a version gets the highest."""
    manager.set_aspired("m", {1: "/m/1", 3: "/m/3", 2: "/m/2"})
    for version in (1, 2, 3):
        tick_until(manager, monitor, version, ManagerState.AVAILABLE)
    with manager.handle("m", None) as servable:
        assert servable.version == 3
    assert manager.available_versions("m") == [1, 2, 3]
