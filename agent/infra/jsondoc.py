"""Decoding a JSON answer from an HTTP endpoint the agent talks to (its own admin API, Prometheus)."""

from __future__ import annotations

import json
from typing import Any


def json_object(raw: bytes, url: str) -> dict[str, Any]:
    """The answer as a JSON object; ValueError saying what ``url`` sent instead (callers add the hint)."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{url} did not answer with JSON") from err
    if not isinstance(data, dict):
        raise ValueError(f"{url} answered with JSON that is not an object")
    return data
