"""A small urllib client for the agent's HTTP endpoint, used by ``tfs-agent status|pin|unpin|rollback``.

urllib rather than an HTTP library: the CLI talks to one local endpoint and must not add a dependency. Every
failure becomes an ``AdminClientError`` whose message says what to do (start the agent, fix the token, ...).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from agent.core.errors import AgentError
from agent.infra.jsondoc import json_object

ACTIONS = ("pin", "unpin", "rollback", "clear")
#: An admin action may wait for a version to load (rollback); status is a cheap read.
ADMIN_TIMEOUT = 120.0
STATUS_TIMEOUT = 10.0


class AdminClientError(AgentError):
    """Talking to the agent's HTTP endpoint failed."""


class AgentUnreachableError(AdminClientError):
    """Nothing answered at the URL (agent not running, wrong port, timeout)."""

    retryable = True


class AdminRefusedError(AdminClientError):
    """The agent answered with an error status; ``status`` holds the HTTP code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def get_status(base_url: str, *, timeout: float = STATUS_TIMEOUT) -> dict[str, Any]:
    """The agent's /status document."""
    return _call(urllib.request.Request(_join(base_url, "/status")), timeout, "read status")


def admin(
    base_url: str,
    model: str,
    action: str,
    *,
    token: str | None,
    version: int | None = None,
    timeout: float = ADMIN_TIMEOUT,
) -> dict[str, Any]:
    """POST an admin action (pin/unpin/rollback/clear) and return the agent's JSON answer."""
    if action not in ACTIONS:
        raise AdminClientError(f"unknown admin action {action!r}; choose one of {', '.join(ACTIONS)}")
    if action in ("pin", "clear") and version is None:
        raise AdminClientError(f"{action} needs a version")
    body = json.dumps({"version": version} if version is not None else {}).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token.strip()}"
    url = _join(base_url, f"/admin/models/{quote(model, safe='')}/{action}")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    return _call(request, timeout, f"{action} {model}")


def _join(base_url: str, path: str) -> str:
    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        base = "http://" + base
    return base + path


def _call(request: urllib.request.Request, timeout: float, what: str) -> dict[str, Any]:
    """Send, decode the JSON answer, and map every failure to one clear AdminClientError."""
    url = request.full_url
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _decode(response.read(), url)
    except urllib.error.HTTPError as err:
        with err:
            message = _error_message(err.read())
        raise AdminRefusedError(_refusal(what, err.code, message), err.code) from err
    except urllib.error.URLError as err:
        reason = err.reason
        raise AgentUnreachableError(
            f"cannot reach the agent ({reason}); is the agent running? tried {url}"
        ) from err
    except TimeoutError as err:
        raise AgentUnreachableError(
            f"no answer from the agent within {timeout:g}s; is the agent running? tried {url}"
        ) from err
    except OSError as err:
        raise AgentUnreachableError(
            f"cannot reach the agent ({err}); is the agent running? tried {url}"
        ) from err


def _decode(raw: bytes, url: str) -> dict[str, Any]:
    return json_object(raw, url, error=AdminClientError, hint="is that the agent's HTTP port?")


def _error_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace").strip()[:200] or "(empty answer)"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        return error
    return json.dumps(data)[:200]


def _refusal(what: str, status: int, message: str) -> str:
    hints = {
        401: " (check the token: the CLI sends the contents of the token file as a bearer token)",
        404: " (check the model name and the agent's URL)",
    }
    return f"the agent refused to {what} (HTTP {status}): {message}{hints.get(status, '')}"
