"""One log line per state transition, with structured fields (model, version, stage, outcome).

Text for people (``key=value`` after the message), JSON for log pipelines; chosen once in the CLI.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_FIELDS = "tfs_fields"


def event(log: logging.Logger, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``message`` with structured ``fields`` (None values are dropped)."""
    log.log(level, message, extra={_FIELDS: {k: v for k, v in fields.items() if v is not None}})


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        fields = getattr(record, _FIELDS, {})
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        text = f"{base} {extra}" if extra else base
        return text + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, _FIELDS, {}),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("apscheduler", "urllib3", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Pub/Sub's stream warns on every reconnect while Pub/Sub is away; the agent logs the outage once itself.
    logging.getLogger("google.api_core.bidi").setLevel(logging.ERROR)
