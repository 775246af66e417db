"""The agent's HTTP endpoint and its CLI client, against a real server on a free loopback port."""

from __future__ import annotations

import hmac
import http.client
import json
import logging
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from agent.core.errors import AgentError, ConfigError
from agent.infra.logs import JsonFormatter
from agent.service import admin_client
from agent.service.http import MAX_BODY_BYTES, AgentHttp

TOKEN = "s3cret-token"


@dataclass
class FakeAdmin:
    """Records calls; models outside ``known`` raise KeyError, ``refuse`` makes every call raise it."""

    known: tuple[str, ...] = ("m",)
    refuse: Exception | None = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def _do(self, *call: Any) -> Mapping[str, Any]:
        if call[1] not in self.known:
            raise KeyError(call[1])
        if self.refuse is not None:
            raise self.refuse
        self.calls.append(call)
        return {"model": call[1], "action": call[0], "args": list(call[2:])}

    def pin(self, model: str, version: int) -> Mapping[str, Any]:
        return self._do("pin", model, version)

    def unpin(self, model: str) -> Mapping[str, Any]:
        return self._do("unpin", model)

    def rollback(self, model: str) -> Mapping[str, Any]:
        return self._do("rollback", model)

    def clear(self, model: str, version: int) -> Mapping[str, Any]:
        return self._do("clear", model, version)


@dataclass
class World:
    """What the fixture's server reads from; tests flip these."""

    healthy: bool = True
    ready: tuple[bool, dict[str, str]] = (True, {})
    status: dict[str, Any] = field(default_factory=lambda: {"models": {"m": {"serving": 3}}})
    status_error: Exception | None = None
    tfserving_live: tuple[bool, str] = (True, "ok")

    def get_status(self) -> Mapping[str, Any]:
        if self.status_error is not None:
            raise self.status_error
        return self.status


@dataclass
class Running:
    server: AgentHttp
    admin: FakeAdmin
    world: World
    registry: CollectorRegistry
    token_file: Path | None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def post(self, path: str, payload: Any = None, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        body = b"" if payload is None else json.dumps(payload).encode()
        status, _, raw = self.request("POST", path, body, headers)
        return status, json.loads(raw)


def _serve(tmp_path: Path, token: str | None) -> Iterator[Running]:
    registry = CollectorRegistry()
    Counter("tfs_agent_polls", "Polls.", ["model", "outcome"], registry=registry).labels("m", "ok").inc()
    token_file = None
    if token is not None:
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
    world, admin = World(), FakeAdmin()
    server = AgentHttp(
        host="127.0.0.1",
        port=0,
        registry=registry,
        status=world.get_status,
        healthy=lambda: world.healthy,
        ready=lambda: world.ready,
        admin=admin,
        token_file=token_file,
        tfserving_live=lambda: world.tfserving_live,
    )
    server.start()
    try:
        yield Running(server, admin, world, registry, token_file)
    finally:
        server.stop()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    yield from _serve(tmp_path, TOKEN)


@pytest.fixture
def tokenless(tmp_path: Path) -> Iterator[Running]:
    yield from _serve(tmp_path, None)


# -- read endpoints --
def test_port_zero_binds_a_free_port(running: Running) -> None:
    """Configured with port 0, the server reports the port it actually bound."""
    assert running.server.port > 0
    assert running.server.url == f"http://127.0.0.1:{running.server.port}"


def test_metrics_exposition_parses(running: Running) -> None:
    """GET /metrics serves the injected registry in a format Prometheus' parser reads."""
    status, headers, body = running.request("GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = families["tfs_agent_polls"].samples
    assert any(s.labels == {"model": "m", "outcome": "ok"} and s.value == 1.0 for s in samples)


def test_metrics_openmetrics_on_request(running: Running) -> None:
    """A scraper asking for OpenMetrics gets it."""
    accept = "application/openmetrics-text; version=1.0.0"
    status, headers, body = running.request("GET", "/metrics", headers={"Accept": accept})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_healthz_follows_healthy(running: Running) -> None:
    """/healthz is 200 ok while healthy() holds and 503 before the initial config is written."""
    assert running.request("GET", "/healthz")[::2] == (200, b"ok\n")
    running.world.healthy = False
    status, _, body = running.request("GET", "/healthz")
    assert status == 503
    assert b"initial" in body


def test_livez_tfserving_is_503_with_the_reason_while_not_live(running: Running) -> None:
    """/livez/tfserving answers 200 while TF Serving counts as live, 503 with the reason as body when not."""
    assert running.request("GET", "/livez/tfserving")[::2] == (200, b"ok\n")
    running.world.tfserving_live = (False, "3 ReloadConfig calls in a row ran past their deadline")
    status, headers, body = running.request("GET", "/livez/tfserving")
    assert (status, body) == (503, b"3 ReloadConfig calls in a row ran past their deadline\n")
    assert headers["Content-Type"].startswith("text/plain")


def test_readyz_names_the_model_that_is_not_ready(running: Running) -> None:
    """/readyz is 200 when all models are ready, else 503 with each unready model and why."""
    status, _, body = running.request("GET", "/readyz")
    assert (status, json.loads(body)) == (200, {"ready": True, "not_ready": {}})
    running.world.ready = (False, {"m": "validating version 4"})
    status, _, body = running.request("GET", "/readyz")
    assert (status, json.loads(body)) == (503, {"ready": False, "not_ready": {"m": "validating version 4"}})


def test_status_is_json(running: Running) -> None:
    """/status serves status() as JSON."""
    status, headers, body = running.request("GET", "/status?pretty=1")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"models": {"m": {"serving": 3}}}


def test_unknown_path_is_404(running: Running) -> None:
    """An unknown path is a JSON 404 that lists the endpoints."""
    status, _, body = running.request("GET", "/nope")
    assert status == 404
    assert "/healthz" in json.loads(body)["error"]


def test_failure_inside_a_handler_hides_the_traceback(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception answers 500 with a generic message and logs the traceback instead."""
    running.world.status_error = RuntimeError("secret internals at /srv/x.py line 3")
    with caplog.at_level(logging.ERROR, logger="agent.service.http"):
        status, _, body = running.request("GET", "/status")
    assert status == 500
    assert json.loads(body) == {"error": "internal error; see the agent's log"}
    assert b"Traceback" not in body
    assert b"secret" not in body
    assert any(r.exc_info for r in caplog.records)


def test_wrong_methods_are_405(running: Running) -> None:
    """GET on an admin path and PUT anywhere are refused with 405, not a stdlib HTML page."""
    assert running.request("GET", "/admin/models/m/pin")[0] == 405
    status, headers, _ = running.request("PUT", "/status", b"{}")
    assert status == 405
    assert headers["Allow"] == "GET, POST"


def test_server_banner_hides_python_version(running: Running) -> None:
    """The Server header does not advertise the Python version."""
    _, headers, _ = running.request("GET", "/healthz")
    assert headers["Server"].strip() == "tfs-agent"


# -- admin: authentication --
def test_admin_refused_without_token_file(tokenless: Running) -> None:
    """Without a token file every admin request is 403 and the message says how to enable it."""
    status, body = tokenless.post("/admin/models/m/rollback", token="anything")
    assert status == 403
    assert "admin_token_file" in body["error"]
    assert tokenless.admin.calls == []


def test_admin_refused_when_token_file_empty(running: Running) -> None:
    """An empty token file disables admin (an empty token must never match an empty header)."""
    assert running.token_file is not None
    running.token_file.write_text("  \n")
    status, body = running.post("/admin/models/m/rollback", token="")
    assert status == 403
    assert "empty" in body["error"]


def test_admin_refused_without_authorization(running: Running) -> None:
    """No Authorization header → 401 with a Bearer challenge; the action does not run."""
    status, headers, raw = running.request("POST", "/admin/models/m/unpin", b"")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert "Bearer" in json.loads(raw)["error"]
    assert running.admin.calls == []


def test_admin_refused_with_wrong_token(running: Running) -> None:
    """A wrong token (or another scheme) → 401; the action does not run."""
    assert running.post("/admin/models/m/unpin", token="s3cret-tokem")[0] == 401
    status, _, _ = running.request("POST", "/admin/models/m/unpin", b"", {"Authorization": f"Basic {TOKEN}"})
    assert status == 401
    assert running.admin.calls == []


def test_admin_token_compared_in_constant_time(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """The presented token is checked with hmac.compare_digest, never ==."""
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert running.post("/admin/models/m/unpin", token="wrong")[0] == 401
    assert running.post("/admin/models/m/unpin")[0] == 200
    assert seen == [(b"wrong", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


def test_admin_token_rotation_applies_without_restart(running: Running) -> None:
    """Rewriting the token file makes the new token valid and the old one invalid."""
    assert running.token_file is not None
    running.token_file.write_text("rotated-token-with-a-different-length\n")
    assert running.post("/admin/models/m/unpin")[0] == 401
    assert running.post("/admin/models/m/unpin", token="rotated-token-with-a-different-length")[0] == 200


# -- admin: actions --
@pytest.mark.parametrize(
    ("action", "payload", "call"),
    [
        ("pin", {"version": 7}, ("pin", "m", 7)),
        ("unpin", None, ("unpin", "m")),
        ("rollback", {}, ("rollback", "m")),
        ("clear", {"version": 5}, ("clear", "m", 5)),
    ],
)
def test_admin_actions_reach_the_actions(
    running: Running, action: str, payload: Any, call: tuple[Any]
) -> None:
    """Each admin path calls the matching AdminActions method and returns its result as JSON."""
    status, body = running.post(f"/admin/models/m/{action}", payload)
    assert status == 200
    assert running.admin.calls == [call]
    assert body == {"model": "m", "action": action, "args": list(call[2:])}


def test_admin_unknown_model_is_404(running: Running) -> None:
    """A KeyError from the actions (unknown model) answers 404."""
    status, body = running.post("/admin/models/other/rollback")
    assert status == 404
    assert "other" in body["error"]


def test_admin_unknown_action_is_404(running: Running) -> None:
    """An action outside pin/unpin/rollback/clear is a 404."""
    assert running.post("/admin/models/m/delete")[0] == 404


@pytest.mark.parametrize(
    ("error", "status"), [(AgentError("nothing to roll back to"), 409), (ConfigError("bad pin"), 400)]
)
def test_admin_agent_errors_map_to_client_errors(running: Running, error: Exception, status: int) -> None:
    """AgentError → 409 and ConfigError → 400, each with the error's message."""
    running.admin.refuse = error
    assert running.post("/admin/models/m/rollback") == (status, {"error": str(error)})


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[7]", "JSON object"),
        (b'{"version": "7"}', "non-negative integer"),
        (b'{"version": true}', "non-negative integer"),
        (b'{"version": -1}', "non-negative integer"),
        (b'{"version": 7, "force": 1}', "unknown field"),
        (b"", "needs a JSON body"),
    ],
)
def test_admin_bad_bodies_are_400(running: Running, body: bytes, needle: str) -> None:
    """Malformed pin bodies answer 400 with a message saying what is wrong; the action does not run."""
    status, _, raw = running.request(
        "POST", "/admin/models/m/pin", body, {"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 400
    assert needle in json.loads(raw)["error"]
    assert running.admin.calls == []


def test_admin_body_size_limited(running: Running) -> None:
    """A body above the limit is refused with 413 before it is parsed."""
    big = b'{"version": 1, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    status, _, _ = running.request("POST", "/admin/models/m/pin", big, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 413
    assert running.admin.calls == []


def test_admin_logs_one_line_per_action(running: Running, caplog: pytest.LogCaptureFixture) -> None:
    """Each admin request, accepted or refused, logs exactly one line with structured model, version and
    outcome (the HTTP status) fields."""
    with caplog.at_level(logging.INFO, logger="agent.service.http"):
        running.post("/admin/models/m/pin", {"version": 9})
        running.post("/admin/models/m/pin", {"version": 9}, token="wrong")
    records = [r for r in caplog.records if r.getMessage().startswith("admin ")]
    assert [r.getMessage() for r in records] == ["admin pin", "admin pin"]
    fields = [JsonFormatter().format(r) for r in records]
    first, second = (json.loads(f) for f in fields)
    assert (first["model"], first["version"], first["outcome"], first["stage"]) == ("m", 9, 200, "admin")
    assert (second["model"], second["outcome"]) == ("m", 401)
    assert TOKEN not in " ".join(fields)


# -- the CLI's client --
def test_client_reads_status(running: Running) -> None:
    """get_status returns the /status document."""
    assert admin_client.get_status(running.server.url) == {"models": {"m": {"serving": 3}}}


def test_client_posts_admin_action(running: Running) -> None:
    """admin() sends the token and version and returns the agent's answer."""
    answer = admin_client.admin(running.server.url, "m", "pin", token=TOKEN, version=4)
    assert answer == {"model": "m", "action": "pin", "args": [4]}
    assert running.admin.calls == [("pin", "m", 4)]


def test_client_accepts_base_url_without_scheme(running: Running) -> None:
    """host:port works as a base URL."""
    assert (
        admin_client.admin(f"127.0.0.1:{running.server.port}", "m", "unpin", token=TOKEN)["action"] == "unpin"
    )


def test_client_reports_refusal_with_server_message(running: Running) -> None:
    """An HTTP error becomes AdminRefusedError carrying the status and the agent's message."""
    running.admin.refuse = AgentError("version 4 is quarantined")
    with pytest.raises(admin_client.AdminRefusedError, match="quarantined") as caught:
        admin_client.admin(running.server.url, "m", "pin", token=TOKEN, version=4)
    assert caught.value.status == 409


def test_client_hints_at_token_on_401(running: Running) -> None:
    """A wrong token's error message points at the token."""
    with pytest.raises(admin_client.AdminRefusedError, match="check the token"):
        admin_client.admin(running.server.url, "m", "rollback", token="nope")


def test_client_unreachable_agent_says_what_it_tried() -> None:
    """Connection refused becomes AgentUnreachableError naming the URL it tried."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(
        admin_client.AgentUnreachableError, match=rf"is the agent running\? tried {url}/status"
    ):
        admin_client.get_status(url)


def test_client_rejects_bad_arguments_locally() -> None:
    """Unknown actions and a pin without a version fail before any request."""
    with pytest.raises(admin_client.AdminClientError, match="unknown admin action"):
        admin_client.admin("http://127.0.0.1:1", "m", "delete", token=TOKEN)
    with pytest.raises(admin_client.AdminClientError, match="needs a version"):
        admin_client.admin("http://127.0.0.1:1", "m", "pin", token=TOKEN)
