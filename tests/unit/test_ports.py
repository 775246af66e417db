"""Ports the test kit and the demo hand to servers stay out of the kernel's ephemeral range."""

from __future__ import annotations

import socket

from agent.service.demo.ports import _ephemeral_low, free_port


def test_free_ports_sit_below_the_ephemeral_range_and_are_not_repeated() -> None:
    """A picked port is below where port-0 binds and outgoing connections draw from, never given twice."""
    low = _ephemeral_low()
    ports = [free_port() for _ in range(50)]
    assert all(1024 <= p < low for p in ports)
    assert len(set(ports)) == len(ports)


def test_a_picked_port_can_be_bound() -> None:
    """What free_port returns is bindable on loopback right after."""
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
