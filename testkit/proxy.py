"""A loopback reverse proxy in front of any bucket emulator: exact request counts, latency, injected faults.

Every request it forwards is recorded as ``"METHOD /path?query"`` (exact, unlike an emulator's log, which is
written after the response); ``delay`` adds that many seconds to each, for a real bucket's latency.
``inject`` makes the next ``times`` requests whose ``"METHOD path"`` matches a regex fail one way:

- ``status``: answer ``status`` (503 by default) without asking the emulator;
- ``truncate``: send the headers (full Content-Length) and half the body, then close the connection;
- ``stall``: send the headers and half the body, then stop sending until the client gives up (or 30 s);
- ``refuse``: close the connection without answering, like a server that died.

``cut()`` refuses every request until ``heal()`` (a pod cut off from the bucket; ``cut_refused`` counts them).

``with Proxy(server.port) as proxy:`` then point the client at ``proxy.url``.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal

Fault = Literal["status", "truncate", "stall", "refuse"]
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
}
_CHUNK = 1024 * 1024
_STALL_LIMIT = 30.0  # seconds a stalled response is held at most; clients under test time out well before


@dataclass
class _Rule:
    fault: Fault
    match: str
    times: int
    status: int


class Proxy:
    """See the module docstring."""

    def __init__(self, upstream_port: int, *, delay: float = 0.0) -> None:
        self.upstream_port, self.delay = upstream_port, delay
        self.requests: list[str] = []
        self.faults: list[str] = []
        """``"<fault> METHOD /path"`` for every fault injected so far."""
        self._rules: list[_Rule] = []
        self._cut = threading.Event()
        self.cut_refused = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(self, fault: Fault, *, match: str = "", times: int = 1, status: int = 503) -> None:
        """Fail the next ``times`` requests whose ``METHOD path`` matches the regex ``match``."""
        with self._lock:
            self._rules.append(_Rule(fault, match, times, status))

    def cut(self) -> None:
        """Refuse every request (the connection closed unanswered) until ``heal``."""
        self._cut.set()

    def heal(self) -> None:
        self._cut.clear()

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def _take(self, line: str) -> _Rule | None:
        with self._lock:
            self.requests.append(line)
            if self._cut.is_set():
                self.cut_refused += 1
                return _Rule("refuse", "", 0, 0)
            for rule in self._rules:
                if rule.times > 0 and re.search(rule.match, line):
                    rule.times -= 1
                    self.faults.append(f"{rule.fault} {line}")
                    return rule
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: with Nagle's algorithm on, the body waits for the
            # client's delayed ACK, ~40 ms a response that no real bucket adds (``delay`` is for latency).
            disable_nagle_algorithm = True

            def _forward(self) -> None:
                rule = proxy._take(f"{self.command} {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if rule is not None and rule.fault == "refuse":
                    self.close_connection = True
                    return
                if rule is not None and rule.fault == "status":
                    self._answer_status(rule.status)
                    return
                if proxy.delay:
                    time.sleep(proxy.delay)  # the injected per-request latency
                self._relay(body, rule)

            def _answer_status(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _relay(self, body: bytes, rule: _Rule | None) -> None:
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                whole = response.read() if response.getheader("Content-Length") is None else None
                length = len(whole) if whole is not None else int(response.getheader("Content-Length") or 0)
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command != "HEAD":
                    self._send_body(response, whole, length, rule)
                upstream.close()

            def _send_body(
                self, response: http.client.HTTPResponse, whole: bytes | None, length: int, rule: _Rule | None
            ) -> None:
                if rule is not None:  # truncate or stall: half the body, then the fault
                    self.wfile.write((whole if whole is not None else response.read(length))[: length // 2])
                    self.wfile.flush()
                    if rule.fault == "stall":
                        proxy._closing.wait(_STALL_LIMIT)
                    self.close_connection = True
                    return
                if whole is not None:
                    self.wfile.write(whole)
                    return
                while chunk := response.read(_CHUNK):
                    self.wfile.write(chunk)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward  # noqa: N815 (http.server's names)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
