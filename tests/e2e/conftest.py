"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.fleet import Pod
from testkit.stack import Stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """One stack (bucket, volume, TF Serving, the agent), not started: set ``stack.config`` first."""
    made = Stack(tmp_path)
    yield made
    made.close()


@pytest.fixture
def pods() -> Iterator[list[Pod]]:
    """The fleet pods a test starts (testkit.fleet.start_pods appends to it), all closed afterwards."""
    made: list[Pod] = []
    yield made
    for pod in made:
        pod.close()
