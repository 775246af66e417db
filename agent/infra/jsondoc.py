"""Decoding a JSON answer from an HTTP endpoint the agent talks to (its own admin API, Prometheus)."""

from __future__ import annotations

import json
from typing import Any


def json_object(
    raw: bytes, url: str, *, error: type[Exception] = ValueError, hint: str = ""
) -> dict[str, Any]:
    """The answer as a JSON object, or ``error`` saying what ``url`` sent instead, followed by ``hint``.

    Each caller passes its own error class and the hint that names what to check (``"is that the agent's
    HTTP port?"``), so the decoding and the wording of the failure live here once.
    """
    suffix = f"; {hint}" if hint else ""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise error(f"{url} did not answer with JSON{suffix}") from err
    if not isinstance(data, dict):
        raise error(f"{url} answered with JSON that is not an object{suffix}")
    return data
