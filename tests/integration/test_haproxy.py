"""The HAProxy fixture's health check: it follows /readyz's status code, so a 503 takes the pod out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from testkit.haproxy import Backend, HAProxy, render
from testkit.ports import free_port


class _Readyz(BaseHTTPRequestHandler):
    """/readyz answering 200 while the server is ``ready``, else 503 (our own agent's endpoint, stubbed)."""

    def do_GET(self) -> None:
        code = 200 if self.path == "/readyz" and self.server.ready else 503  # type: ignore[attr-defined]
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def readyz() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Readyz)
    server.ready = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_503_from_readyz_takes_the_pod_out_and_a_200_brings_it_back(
    tmp_path: Path, readyz: ThreadingHTTPServer
) -> None:
    """HAProxy marks a pod DOWN on /readyz 503 (not only when the agent stops answering) and UP on 200."""
    proxy = HAProxy(tmp_path, [Backend("pod0", free_port(), readyz.server_address[1])]).start()
    try:
        proxy.wait_status("pod0", "UP")
        readyz.ready = False  # type: ignore[attr-defined]
        proxy.wait_status("pod0", "DOWN")
        readyz.ready = True  # type: ignore[attr-defined]
        proxy.wait_status("pod0", "UP")
    finally:
        proxy.stop()


def test_rendered_config_balances_h2_per_request_and_checks_the_agent_port() -> None:
    """Each server speaks h2 to TF Serving and is checked over HTTP/1.1 on its agent's port."""
    text = render([Backend("pod0", 8500, 9464)], port=1234, stats_socket=Path("/tmp/s.sock"))
    assert "bind 127.0.0.1:1234 proto h2" in text
    assert "server pod0 127.0.0.1:8500 proto h2 check port 9464 check-proto h1" in text
    assert "option httpchk GET /readyz" in text
