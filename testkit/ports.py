"""Loopback ports for servers under test.

Prefer a server that binds port 0 and reports the port it got (the agent does: ``http.port: 0``, read back
from its log). A server that must be told its port (TF Serving, fake-gcs-server, Prometheus, HAProxy) gets
one from ``free_port`` — picked below the kernel's ephemeral range (agent/service/demo/ports.py), so no
port-0 bind or outgoing connection takes it meanwhile — and is started through ``retry_on_bind_failure``,
which tries again on fresh ports when the server says it could not bind.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeVar

from agent.service.demo.ports import free_port

__all__ = ["free_port", "is_bind_failure", "port_open", "retry_on_bind_failure"]

T = TypeVar("T")

BIND_FAILURES = ("address already in use", "failed to bind", "could not bind", "bind: address")
"""Lower-case fragments of what the servers we start print when their port is taken."""


class PortInUse(Exception):  # noqa: N818  (a condition to retry on, like the OS's EADDRINUSE)
    """A server exited because the port it was given was taken meanwhile."""


def port_open(port: int) -> bool:
    """True if something accepts TCP connections on loopback ``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def is_bind_failure(output: str) -> bool:
    """Whether a server's output says it could not bind its port."""
    text = output.lower()
    return any(fragment in text for fragment in BIND_FAILURES)


def retry_on_bind_failure(start: Callable[[], T], *, attempts: int = 5) -> T:
    """``start()`` (which picks its ports with ``free_port``), again while it raises PortInUse."""
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except PortInUse:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")
