"""The agent's exception tree: every failure the agent can name, mapped once at the adapter that sees it.

    AgentError                      base; ``reason`` is the short text recorded for quarantine and /status
    ├── ConfigError                 bad YAML, unknown key, bad duration — names the key and the fix
    ├── SourceError                 the bucket (file:// or gs://)
    │   ├── TransientSourceError    5xx, timeouts, resets — retried with backoff
    │   │   └── RateLimitedError    429: more mutations of one object than the store allows (GCS ~1/s)
    │   ├── PermanentSourceError    404, 403 — fails the candidate
    │   │   └── ObjectNotFoundError (sources/base.py) a missing manifest means "not complete yet"
    │   └── PreconditionFailed      412: a compare-and-swap write lost the race (RecordStore)
    ├── ManifestError               manifest missing, unparsable, or disagreeing with the bucket
    ├── StagingError                getting a version onto the volume
    │   ├── UnsafePathError         an object name that would escape the staging dir
    │   ├── ChecksumMismatchError   size or crc32c differs from the manifest
    │   └── DiskSpaceError          not enough free space on the volume
    ├── ServingError                TF Serving (gRPC)
    │   ├── ServingUnavailableError the server is not reachable (yet)
    │   │   └── ServingDeadlineError a call ran past its deadline (slow, or ReloadConfig wedged)
    │   ├── ServingRejectedError    ReloadConfig/Predict refused the request (INVALID_ARGUMENT, ...)
    │   ├── LoadFailedError         a version went to END with an error
    │   └── LoadTimeoutError        a version did not become AVAILABLE before the deadline
    ├── FleetRecordError            a fleet record (agent/fleet) that does not parse: names the object
    ├── FleetRefusedError           an operator's fleet action (pin, rollback, ...) refused, with the reason
    ├── GoldenFileError             the golden file does not parse or does not fit the model
    ├── PublishError                (publish.py) SRC_DIR is no SavedModel, or the version exists already
    └── AdminClientError            (admin_client.py) the CLI could not talk to a running agent
        ├── AgentUnreachableError   connection refused: is the agent running?
        └── AdminRefusedError       the agent answered 4xx/5xx (e.g. 401 without the token)

Adapters raise these ``from`` the library error; nothing above an adapter sees a grpc or google exception.
The local volume's OSError is mapped here, once (``volume_error``), for every caller that writes to it.
"""

from __future__ import annotations

import errno

_MAX_REASON = 500


def truncate(text: str, limit: int = _MAX_REASON) -> str:
    """Keep log lines and state files bounded when a library puts a whole payload in its message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""

    #: Whether trying the same thing again later may succeed.
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(truncate(message))

    @property
    def reason(self) -> str:
        """One line suitable for /status, metrics labels (by class) and the quarantine record."""
        return str(self)


class ConfigError(AgentError):
    """The configuration is invalid; the message names the key and how to fix it."""


class SourceError(AgentError):
    """The bucket could not be read."""


class TransientSourceError(SourceError):
    """A failure that may go away: 5xx, timeout, connection reset."""

    retryable = True


class RateLimitedError(TransientSourceError):
    """429: the store refused a request rate (GCS allows about one mutation per object per second)."""


class PermanentSourceError(SourceError):
    """A failure that will not go away by retrying: object missing, access denied."""


class PreconditionFailed(SourceError):  # noqa: N818  (HTTP 412's own name; a lost race, not a fault)
    """A compare-and-swap write lost: the object changed (or exists, for a create-only write) since it was
    read. The caller re-reads and re-decides; retrying the same write blindly would undo the winner's."""


class FleetRecordError(AgentError):
    """A fleet record does not parse (hand-edited, truncated, a newer format); the message names the
    object. Nothing overwrites it except a compare-and-swap on the generation that was read."""


class ManifestError(AgentError):
    """The version's manifest is missing, unparsable or disagrees with the bucket."""


class StagingError(AgentError):
    """The version could not be copied onto the volume intact."""


class UnsafePathError(StagingError):
    """An object name would write outside the staging directory."""


class ChecksumMismatchError(StagingError):
    """A downloaded file's size or crc32c differs from the manifest."""


class DiskSpaceError(StagingError):
    """The volume has not enough free space for the version."""

    retryable = True


class MemoryLimitError(AgentError):
    """Loading the version beside what TF Serving holds would exceed ``serving.memory_limit``."""

    retryable = True


class ServingError(AgentError):
    """TF Serving refused or failed a request."""


class ServingUnavailableError(ServingError):
    """TF Serving is not reachable (not started yet, restarting)."""

    retryable = True


class ServingDeadlineError(ServingUnavailableError):
    """A call ran past its deadline: the server is slow, or (ReloadConfig) wedged behind a stuck reload."""


class ServingRejectedError(ServingError):
    """TF Serving answered with an error status for the request."""


class LoadFailedError(ServingError):
    """A version reached END with an error instead of AVAILABLE."""


class LoadTimeoutError(ServingError):
    """A version did not become AVAILABLE before the deadline."""

    retryable = True


class FleetRefusedError(AgentError):
    """``tfs-agent fleet pin|rollback|abort|clear`` cannot do what was asked; the message says why."""


class GoldenFileError(AgentError):
    """The golden file is malformed or does not fit the model's signature."""


def volume_error(err: OSError, what: str = "") -> StagingError:
    """An OSError from the local volume as the agent's error, naming the path and the fix.

    A full volume (ENOSPC, EDQUOT) is a DiskSpaceError (retryable: pruning or a bigger volume fixes it), and
    keeps the OS's own words; anything else (read-only, gone) is a StagingError."""
    detail = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
    where = f"{what}: " if what else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskSpaceError(
            f"{where}the local volume is full ({detail}); lower keep_versions or grow the volume"
        )
    return StagingError(f"{where}cannot write to the local volume ({detail})")


class MetricQueryError(AgentError):
    """A live metric could not be read (Prometheus unreachable, the query refused, or ambiguous)."""

    retryable = True
