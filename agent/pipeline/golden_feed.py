"""A model's golden file as it changes in the bucket: noticed cheaply each pass, parsed once per generation.

A labelling pipeline rewrites the golden file under the same URI. Each pass asks only for its generation
(GCS's object generation, a local file's mtime and size: one metadata request, no content); the bytes are
read and parsed only when that changes. A refresh that does not parse is the config's fault: the last good
content stays in use and the problem is reported, so a broken upload changes no verdict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from agent.core.errors import AgentError, GoldenFileError
from agent.core.golden import Golden, parse_golden

GenerationReader = Callable[[str], str]
"""``stat_uri``: the golden file's generation token, without reading it."""
GoldenBytesReader = Callable[[str, str | None], bytes]
"""``read_uri(uri, generation)``: the golden file's bytes (of that generation where the store can)."""


@dataclass(frozen=True)
class GoldenData:
    """One parsed generation of the golden file."""

    golden: Golden
    generation: str


class GoldenFeed:
    """The golden file at ``uri``: ``poll()`` gives a newer generation, parsed; ``good`` is the one in use."""

    def __init__(self, uri: str, *, read: GoldenBytesReader, stat: GenerationReader | None = None) -> None:
        self.uri = uri
        self._read, self._stat = read, stat
        self.good: GoldenData | None = None
        """The generation in use, by candidates' validation and the serving version's score."""
        self.pending: GoldenData | None = None
        """A newer generation that parsed, until it is adopted (it fits) or rejected (it does not)."""
        self._seen: str | None = None  # the last generation read, good or not: never parsed twice

    @property
    def in_sync(self) -> bool:
        """Whether the file, as the last poll saw it, is the generation in use (no refresh left out)."""
        return self.good is not None and self._seen == self.good.generation

    def adopt(self, data: GoldenData) -> None:
        """``data`` is now the golden data every check and score uses."""
        self.good, self.pending = data, None

    def reject(self) -> None:
        """The pending generation does not fit: keep the good one until the file changes again."""
        self.pending = None

    def poll(self) -> GoldenData | None:
        """The pending newer generation, parsed (None when the file has not changed since ``good``).

        Raises GoldenFileError when a new generation cannot be read or parsed (once per generation; the
        last good data stays in ``good``)."""
        generation, data = self._generation()
        if generation == self._seen:
            return self.pending
        self.pending = None
        try:
            raw = data if data is not None else self._read(self.uri, generation)
        except AgentError as err:  # a failed read is tried again next pass
            raise _unreadable(self.uri, err) from err
        self._seen = generation
        if self.good is not None and generation == self.good.generation:
            return None
        self.pending = GoldenData(parse_golden(raw, origin=self.uri), generation)
        return self.pending

    def _generation(self) -> tuple[str, bytes | None]:
        try:
            if self._stat is not None:
                return self._stat(self.uri), None
            raw = self._read(self.uri, None)  # no cheap stat for this store: the content is the generation
        except AgentError as err:
            raise _unreadable(self.uri, err) from err
        return "sha256:" + hashlib.sha256(raw).hexdigest()[:12], raw


def _unreadable(uri: str, err: AgentError) -> AgentError:
    """A bucket hiccup stays retryable (the pass is a retry); anything else is the golden file's problem."""
    return err if err.retryable else GoldenFileError(f"cannot read golden file {uri}: {err.reason}")
