"""The config's building blocks: durations and sizes as people write them, and the strict model base
(unknown keys are errors that name the key)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> timedelta:
    """``"90s"``, ``"10m"``, ``"1h30m"``, ``"250ms"`` or a number of seconds → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        return timedelta(seconds=value)
    text = str(value).strip().replace(" ", "")
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 10m, 1h30m or 250ms")
    return timedelta(seconds=total)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMGTPE]i?|k)?")
_SIZE_FACTORS = {"": 1, "k": 10**3, "K": 10**3}
for _i, _prefix in enumerate("KMGTPE", start=1):
    _SIZE_FACTORS[_prefix + "i"] = 1024**_i
    _SIZE_FACTORS.setdefault(_prefix, 1000**_i)


def parse_size(value: object) -> int:
    """Bytes written as Kubernetes writes quantities: ``"10Gi"``, ``"500Mi"``, ``"2G"`` or a number of bytes,
    so the figure can be copied from the emptyDir's ``sizeLimit`` unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"size must be positive, got {value}")
        return value
    match = _SIZE.fullmatch(str(value).strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a size; write e.g. 10Gi, 500Mi or a number of bytes")
    return int(float(match.group(1)) * _SIZE_FACTORS[match.group(2) or ""])


Size = Annotated[int, BeforeValidator(parse_size)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
