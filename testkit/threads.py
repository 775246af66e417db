"""A context held by another thread while the test acts: a pass holding its lock, a download in flight."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager


@contextmanager
def held_elsewhere(hold: AbstractContextManager[object], timeout: float = 30.0) -> Iterator[None]:
    """``hold`` entered in another thread for the length of the block, left when the block ends."""
    entered, leave = threading.Event(), threading.Event()

    def holder() -> None:
        with hold:
            entered.set()
            leave.wait(timeout)

    worker = threading.Thread(target=holder)
    worker.start()
    try:
        assert entered.wait(timeout), "the other thread never entered"
        yield
    finally:
        leave.set()
        worker.join(timeout)
