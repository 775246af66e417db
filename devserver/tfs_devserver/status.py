"""Status codes and the one error type passed between the devserver's layers.

Why: TF Serving reports every failure as a (``tensorflow.error.Code``, message) pair that surfaces unchanged
in gRPC statuses, REST bodies and GetModelStatus entries; one small type keeps the three identical.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """``tensorflow.error.Code``; the numbers equal gRPC's status codes."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class ServingError(Exception):
    """A failure with the status code and message the stock server would report."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        """``CODE: message``, as absl::Status::ToString prints it (used inside other messages)."""
        return f"{self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def invalid_argument(message: str) -> ServingError:
    """Shorthand for the most common error."""
    return ServingError(Code.INVALID_ARGUMENT, message)


def from_exception(exc: BaseException) -> ServingError:
    """Map any exception (TensorFlow's ``OpError`` carries a code) to a ServingError, keeping its message."""
    if isinstance(exc, ServingError):
        return exc
    code = getattr(exc, "error_code", None)
    message = getattr(exc, "message", None)
    if isinstance(code, int) and isinstance(message, str) and code in Code.__members__.values():
        return ServingError(Code(code), message)
    return ServingError(Code.UNKNOWN, f"{type(exc).__name__}: {exc}")
