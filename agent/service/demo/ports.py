"""Loopback ports for the servers the demo (and the test kit) start and must tell their port.

A port picked by binding port 0 comes from the kernel's ephemeral range — the same range every port-0 bind
(the agent's HTTP endpoint) and every outgoing connection draws from, so between picking it and the server
binding it, another socket may take it. Ports are therefore picked at random just *below* the ephemeral
range, where the kernel never hands out a port by itself, and never handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 12000
_handed: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port below the ephemeral range, free a moment ago (see the module docstring)."""
    low = _ephemeral_low()
    first = max(1024, low - _SPAN)
    for _ in range(500):
        port = random.randint(first, low - 1)
        if port not in _handed and _bindable(port):
            _handed.add(port)
            return port
    with socket.socket() as sock:  # that whole span busy: fall back to the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
