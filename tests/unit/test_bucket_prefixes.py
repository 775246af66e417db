"""What the bucket adapters share (agent/adapters/sources/prefixes.py): one meaning per HTTP status on every
store (hostile object names under a prefix: tests/integration/test_sources_buckets.py)."""

from __future__ import annotations

import pytest

from agent.adapters.sources.base import ObjectNotFoundError
from agent.adapters.sources.prefixes import status_error
from agent.core.errors import (
    PermanentSourceError,
    PreconditionFailed,
    RateLimitedError,
    SourceError,
    TransientSourceError,
)

NAMES = {"thing": "blob", "holder": "container", "denied": "grant the reader role"}


@pytest.mark.parametrize(
    ("status", "kind", "says"),
    [
        (404, ObjectNotFoundError, "x (no such blob or container)"),
        (403, PermanentSourceError, "x; grant the reader role"),
        (401, PermanentSourceError, "x; grant the reader role"),
        (412, PreconditionFailed, "x (the blob changed since it was read)"),
        (429, RateLimitedError, "x"),
        (503, TransientSourceError, "x"),
        (None, TransientSourceError, "x"),  # no answer at all
        (400, PermanentSourceError, "x"),
    ],
)
def test_each_status_means_one_error(status: int | None, kind: type[SourceError], says: str) -> None:
    error = status_error(status, "x", **NAMES)
    assert type(error) is kind
    assert str(error) == says


@pytest.mark.parametrize(
    ("flag", "kind"),
    [
        ("not_found", ObjectNotFoundError),
        ("lost_race", PreconditionFailed),
        ("rate_limited", RateLimitedError),
        ("transient", TransientSourceError),
    ],
)
def test_a_stores_own_code_counts_as_its_status(flag: str, kind: type[SourceError]) -> None:
    """S3 answers some conditions with a code under another status (a 400 or 409 SlowDown, a lost race)."""
    assert type(status_error(400, "x", **NAMES, **{flag: True})) is kind


def test_denied_outranks_a_code_but_not_found_outranks_denied() -> None:
    """The order is the adapters' own: not found, then denied, then lost race, rate limit, transient."""
    assert type(status_error(403, "x", **NAMES, lost_race=True)) is PermanentSourceError
    assert type(status_error(403, "x", **NAMES, not_found=True)) is ObjectNotFoundError
