"""The agent's HTTP endpoint: /metrics, /healthz, /readyz, /status and the token-guarded admin POSTs.

Stdlib ``ThreadingHTTPServer`` on a daemon thread: the endpoint is tiny, must keep answering probes while a
pass holds a model for minutes, and must not add a web framework to the sidecar. Everything it shows comes
from injected callables, so the server knows nothing about the reconciler and tests drive it with fakes.

Admin requests change what serves traffic, so they fail closed: no token file → 403 for everything; a missing
or wrong ``Authorization: Bearer`` token → 401 (compared in constant time). Clients never see a stack trace.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from agent.core.errors import AgentError, ConfigError
from agent.infra.logs import event

log = logging.getLogger(__name__)

#: Admin bodies are one small JSON object; anything bigger is a mistake or an attack.
MAX_BODY_BYTES = 16 * 1024
#: Seconds a client may take to send its request, so slow clients cannot pin handler threads.
REQUEST_TIMEOUT = 10.0
ADMIN_ACTIONS = ("pin", "unpin", "rollback", "clear")
_ADMIN_PATH = re.compile(r"/admin/models/([^/]+)/([a-z]+)")
_VERSIONED = frozenset({"pin", "clear"})
_TEXT = "text/plain; charset=utf-8"
#: How often serve_forever checks for stop(); 0.1 s keeps SIGTERM handling and tests quick at negligible cost.
_SHUTDOWN_POLL = 0.1


class AdminActions(Protocol):
    """What an operator may ask of the agent over HTTP; the reconciler side implements it.

    Each method returns a JSON-able mapping describing the result (sent back as the response body). Raise
    ``KeyError`` (any ``LookupError``) for an unknown model → 404; ``ConfigError`` for a request that can
    never succeed as written → 400; any other ``AgentError`` for a request the current state refuses (pinning
    a quarantined version, rolling back with nothing to roll back to) → 409. The message reaches the operator.
    """

    def pin(self, model: str, version: int) -> Mapping[str, Any]:
        """Serve exactly ``version`` and stop automatic promotions of ``model`` until unpinned."""
        ...

    def unpin(self, model: str) -> Mapping[str, Any]:
        """Return ``model`` to its configured version policy."""
        ...

    def rollback(self, model: str) -> Mapping[str, Any]:
        """Serve the previous validated version still on disk and quarantine the current one."""
        ...

    def clear(self, model: str, version: int) -> Mapping[str, Any]:
        """Forget ``version``'s quarantine so the next pass may try it again."""
        ...


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    body = json.dumps(payload, indent=2, sort_keys=True, default=str).encode() + b"\n"
    return _Reply(status, body, headers=headers)


def _error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    return _json(status, {"error": message}, headers)


class _TokenFile:
    """The admin token, re-read when the file changes (a rotated Kubernetes Secret applies at once)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._token: str | None = None

    def read(self) -> str | None:
        """The current token, or None when there is no usable token (admin is then refused)."""
        if self.path is None:
            return None
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            with self._lock:
                if stamp != self._stamp:
                    self._token = self.path.read_text(encoding="utf-8").strip() or None
                    self._stamp = stamp
                return self._token
        except OSError as err:
            log.warning("admin token file %s is unreadable (%s); refusing admin requests", self.path, err)
            return None


class AgentHttp:
    """The HTTP endpoint; ``start()`` binds and serves on a daemon thread, ``stop()`` shuts it down."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        registry: CollectorRegistry,
        status: Callable[[], Mapping[str, Any]],
        healthy: Callable[[], bool],
        ready: Callable[[], tuple[bool, Mapping[str, str]]],
        admin: AdminActions,
        token_file: Path | None,
        tfserving_live: Callable[[], tuple[bool, str]] | None = None,
    ) -> None:
        """``tfserving_live`` answers GET /livez/tfserving (TF Serving's optional livenessProbe): live or
        not, and why; without it the endpoint always answers 200."""
        self._host, self._port = host, port
        self._tfserving_live = tfserving_live or (lambda: (True, "ok"))
        self._registry = registry
        self._status, self._healthy, self._ready = status, healthy, ready
        self._admin = admin
        self._token = _TokenFile(token_file)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the free port chosen when configured with 0)."""
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        """Base URL a local client can use (wildcard binds are reached through loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self._host, self._host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self) -> None:
        server_class = _Server6 if ":" in self._host else _Server
        self._server = server_class((self._host, self._port), _Handler)
        self._server.app = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(_SHUTDOWN_POLL,), name="agent-http", daemon=True
        )
        self._thread.start()
        admin = "enabled" if self._token.path else "disabled (no http.admin_token_file)"
        log.info("http endpoint listening on %s:%d; admin %s", self._host, self.port, admin)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    # -- GET -------------------------------------------------------------------------------------------------
    def get(self, path: str, accept: str) -> _Reply:
        if path == "/metrics":
            encoder, content_type = choose_encoder(accept)
            return _Reply(200, encoder(self._registry), content_type)
        if path == "/healthz":
            if self._healthy():
                return _Reply(200, b"ok\n", _TEXT)
            return _Reply(503, b"not healthy: the initial TF Serving config is not written yet\n", _TEXT)
        if path == "/readyz":
            ok, not_ready = self._ready()
            return _json(200 if ok else 503, {"ready": ok, "not_ready": dict(not_ready)})
        if path == "/status":
            return _json(200, dict(self._status()))
        if path == "/livez/tfserving":
            live, why = self._tfserving_live()
            return _Reply(200 if live else 503, f"{why}\n".encode(), _TEXT)
        if _ADMIN_PATH.fullmatch(path):
            return _error(405, "admin actions are POST requests", (("Allow", "POST"),))
        return _error(404, f"no such endpoint {path}; try /metrics /healthz /readyz /status /livez/tfserving")

    # -- POST ------------------------------------------------------------------------------------------------
    def post(self, path: str, authorization: str | None, body: bytes | None, client: str) -> _Reply:
        match = _ADMIN_PATH.fullmatch(path)
        if not match or match.group(2) not in ADMIN_ACTIONS:
            return _error(404, f"no such endpoint {path}; admin paths are /admin/models/<model>/<action>")
        model, action = unquote(match.group(1)), match.group(2)
        reply, version = self._run_admin(model, action, authorization, body)
        event(
            log,
            f"admin {action}",
            model=model,
            version=version,
            stage="admin",
            outcome=reply.status,
            client=client,
        )
        return reply

    def _run_admin(
        self, model: str, action: str, authorization: str | None, body: bytes | None
    ) -> tuple[_Reply, int | None]:
        refused = self._authorize(authorization)
        if refused is not None:
            return refused, None
        if body is None:
            return _error(413, f"request body larger than {MAX_BODY_BYTES} bytes"), None
        try:
            version = _parse_version(body, required=action in _VERSIONED)
        except ValueError as err:
            return _error(400, str(err)), None
        return self._dispatch(model, action, version), version

    def _authorize(self, authorization: str | None) -> _Reply | None:
        """None when the bearer token matches; else the refusal to send."""
        token = self._token.read()
        if token is None:
            hint = (
                "admin API disabled: set http.admin_token_file in the agent config to a file holding a token"
                if self._token.path is None
                else f"admin API disabled: token file {self._token.path} is missing, unreadable or empty"
            )
            return _error(403, hint)
        scheme, _, presented = (authorization or "").partition(" ")
        challenge = (("WWW-Authenticate", 'Bearer realm="tfs-agent"'),)
        if scheme.lower() != "bearer" or not presented.strip():
            return _error(401, "missing bearer token: send 'Authorization: Bearer <token>'", challenge)
        if not hmac.compare_digest(presented.strip().encode(), token.encode()):
            return _error(401, "wrong admin token", challenge)
        return None

    def _dispatch(self, model: str, action: str, version: int | None) -> _Reply:
        try:
            if action == "pin":
                result = self._admin.pin(model, cast(int, version))
            elif action == "clear":
                result = self._admin.clear(model, cast(int, version))
            elif action == "unpin":
                result = self._admin.unpin(model)
            else:
                result = self._admin.rollback(model)
        except LookupError:
            return _error(404, f"unknown model {model!r}")
        except ConfigError as err:
            return _error(400, str(err))
        except AgentError as err:
            return _error(409, str(err))
        return _json(200, dict(result))


def _parse_version(body: bytes, *, required: bool) -> int | None:
    """``{"version": N}`` → N; an empty body is fine when no version is needed."""
    if not body.strip():
        if required:
            raise ValueError('this action needs a JSON body like {"version": 42}')
        return None
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError('body must be a JSON object like {"version": 42}')
    unknown = sorted(set(data) - {"version"})
    if unknown:
        raise ValueError(f"unknown field(s) in body: {', '.join(unknown)}")
    version = data.get("version")
    if version is None and not required:
        return None
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f'"version" must be a non-negative integer, got {version!r}')
    return version


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: AgentHttp


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Translates HTTP to AgentHttp.get/post; keeps stack traces and version banners away from clients."""

    server_version = "tfs-agent"
    sys_version = ""
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.1"

    @property
    def _app(self) -> AgentHttp:
        return cast(_Server, self.server).app

    def do_GET(self) -> None:
        self._respond(lambda: self._app.get(urlsplit(self.path).path, self.headers.get("Accept", "")))

    def do_POST(self) -> None:
        body = self._read_body()
        client = self.client_address[0]
        self._respond(
            lambda: self._app.post(urlsplit(self.path).path, self.headers.get("Authorization"), body, client)
        )

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()

    def _not_allowed(self) -> None:
        self._read_body()
        self._send(_error(405, "only GET and POST are supported", (("Allow", "GET, POST"),)))

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds the limit (the connection is then closed)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = MAX_BODY_BYTES + 1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            return None
        return self.rfile.read(length)

    def _respond(self, handle: Callable[[], _Reply]) -> None:
        try:
            reply = handle()
        except Exception:
            log.exception("http handler failed for %s %s", self.command, self.path)
            reply = _error(500, "internal error; see the agent's log")
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Access lines go to debug: probes and scrapes every few seconds would drown the transition log."""
        log.debug("%s " + format, self.client_address[0], *args)
