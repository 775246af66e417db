"""Small helpers shared by the devserver tests: RPC errors, gates for the gated model, background calls."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from testkit.poll import poll_until
from testkit.servers import predict_request
from tfs_devserver.tensors import from_numpy


def float_examples(*values: float) -> list[Any]:
    """One tf.Example per value, each with float feature ``x`` holding it (the example models' input)."""
    from tensorflow.core.example import example_pb2

    out = []
    for value in values:
        example = example_pb2.Example()
        example.features.feature["x"].float_list.value.append(value)
        out.append(example)
    return out


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    """Run ``call`` and return the grpc.RpcError it must raise."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def assert_rpc_error(call: Callable[[], Any], code: grpc.StatusCode, message: str | None = None) -> str:
    """``call`` fails with ``code`` (and exactly ``message`` if given); returns the details."""
    error = rpc_error(call)
    assert error.code() == code, error.details()
    if message is not None:
        assert error.details() == message, f"{error.details()!r} != {message!r}"
    details: str = error.details()
    return details


@dataclass
class Gate:
    """A file the gated model waits for; ``<path>.started`` appears when a call reaches the wait."""

    path: Path

    def wait_started(self, timeout: float = 60.0) -> None:
        """Block until a call (request or warmup) is spinning on this gate."""
        marker = Path(f"{self.path}.started")
        poll_until(marker.exists, timeout=timeout, what=f"{marker} to appear")

    def open(self) -> None:
        """Let every waiting call finish."""
        self.path.touch()


def gated_request(name: str, gate: Gate | str, x: float = 1.0, version: int | None = None) -> Any:
    """A PredictRequest for the gated model; ``gate`` "" returns at once."""
    request = predict_request(name, [x], version=version)
    request.inputs["gate"].CopyFrom(
        from_numpy(np.array(str(getattr(gate, "path", gate)).encode(), dtype=object))
    )
    return request


@dataclass
class Background:
    """A call running on a thread; ``result()`` re-raises its exception."""

    call: Callable[[], Any]
    _value: list[Any] = field(default_factory=list)
    _error: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value.append(self.call())
        except BaseException as exc:
            self._error.append(exc)

    def running(self) -> bool:
        """True while the call has not returned."""
        return self._thread.is_alive()

    def result(self, timeout: float = 60.0) -> Any:
        """The call's return value (waits up to ``timeout``)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "background call did not finish"
        if self._error:
            raise self._error[0]
        return self._value[0]
