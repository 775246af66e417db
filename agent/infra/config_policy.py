"""Per-model policy settings: when a candidate may replace the serving version, how it is judged live, and
when a version counts as complete in the bucket."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.core.cron import CronWindow
from agent.core.evidence import LiveFloor
from agent.core.golden import METRICS
from agent.infra.config_base import Duration, _Strict, parse_duration


class LiveFloorSettings(_Strict):
    """``replace_below: {query: 'avg_over_time(model_online_accuracy{model="m"}[1h])', below: 0.8}``: the
    serving version is replaced once this PromQL query, evaluated on ``monitoring.prometheus_url``, falls
    below ``below`` (or rises above ``above``). No data or an unreachable Prometheus never replaces it."""

    query: str = Field(min_length=1)
    below: float | None = None
    above: float | None = None
    name: str = "live metric"
    """How /status names the value, e.g. ``online accuracy``."""

    @model_validator(mode="after")
    def _one_bound(self) -> LiveFloorSettings:
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of below: (accuracy-like) or above: (error-like)")
        return self

    def floor(self) -> LiveFloor:
        return LiveFloor(self.query, self.below, self.above, self.name)


def _replace_below(value: object) -> object:
    """A mapping with ``query`` is a live floor; otherwise golden metric floors, by known metric name."""
    if not isinstance(value, Mapping):
        return value
    if "query" in value:
        try:
            return LiveFloorSettings.model_validate(dict(value))
        except ValidationError as err:  # one clear message instead of one per member of the union
            raise ValueError(
                "live floor: "
                + "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in err.errors())
            ) from None
    unknown = sorted(str(k) for k in value if k not in METRICS)
    if unknown:
        raise ValueError(
            f"unknown metric(s) {unknown}: golden floors take {', '.join(METRICS)}; "
            "for a live metric write {query: <PromQL>, below: <number>}"
        )
    return value


class LiveGatesSettings(_Strict):
    """The bake judged on live traffic from TF Serving's Prometheus endpoint (``serving.monitoring_url``):
    the bake window against the pod's own baseline before the swap."""

    max_error_ratio: float = Field(0.01, ge=0, le=1)
    """Most failed requests / all requests in the bake window."""
    max_p99_ratio: float = Field(3.0, gt=0)
    """Most the window's p99 latency may be, as a multiple of the baseline's."""
    min_requests: int = Field(20, ge=1)
    """Fewer requests than this in the window: the gates do not judge (the golden probe still does)."""


class PolicySettings(_Strict):
    """Which versions go live and when: version, time-interval and performance policies
    (docs/architecture.md#policies)."""

    versions: Literal["newer", "latest", "pinned"] = "newer"
    """newer: only versions above the serving one; latest: the highest complete version, even a lower one
    (after a bucket rollback); pinned: only the version an operator pinned."""
    window: str | None = None
    """Cron expression (5 fields; names such as ``MON-FRI``, ``JAN`` and 7 for Sunday work); promotions happen
    only in a minute it matches, e.g. ``* 9-16 * * MON-FRI``."""
    window_timezone: str = "UTC"
    """IANA time zone the window is read in (e.g. ``Europe/Berlin``), DST-correct."""
    min_interval: Duration = timedelta(0)
    """Least time between two promotions of this model."""
    champion_tolerance: float | None = None
    """A candidate's gated metric may trail the serving version's by at most this much (absolute)."""
    replace_below: Annotated[dict[str, float] | LiveFloorSettings | None, BeforeValidator(_replace_below)] = (
        None
    )
    """Promote only once the serving version performs below a floor: on the golden data (``{accuracy: 0.9}``,
    ``{mae: 0.5}``; re-scored when the file changes and every ``rescore_interval``), or a live metric
    (``{query: ..., below: 0.8}``). None promotes whenever a candidate passes."""
    rescore_interval: Duration = timedelta(minutes=10)
    """Re-score the serving version on the golden data at least this often (and whenever the file changes)."""
    bake_time: Duration = timedelta(seconds=10)
    """After a promotion, smoke-check the model for this long; a failure rolls back."""
    signature_change: Literal["reject", "allow"] = "reject"
    """reject: a candidate whose SignatureDefs break what the serving version's clients send or read (a
    signature, input or output removed or renamed, a dtype or incompatible shape change) is rejected;
    allow: such a change is reported in the verdict but lets an intentional break through."""
    live_gates: LiveGatesSettings | None = None
    """Judge the bake (a fleet's canary bake too) on live traffic; needs ``serving.monitoring_url``."""

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            CronWindow(value)  # raises ValueError naming the bad field
        return value

    @field_validator("window_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(
                f"{value!r} is not an IANA time zone; write e.g. Europe/Berlin, America/New_York or UTC"
            ) from err
        return value

    @field_validator("rescore_interval")
    @classmethod
    def _rescore(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("rescore_interval must be positive, e.g. 10m")
        return value

    @property
    def window_tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.window_timezone)

    @property
    def golden_floor(self) -> dict[str, float] | None:
        return self.replace_below if isinstance(self.replace_below, dict) else None

    @property
    def live_floor(self) -> LiveFloor | None:
        live = self.replace_below
        return live.floor() if isinstance(live, LiveFloorSettings) else None


class CompletionSettings(_Strict):
    """Parsed form of ``completion``: manifest | marker:<name> | quiet:<duration>."""

    mode: Literal["manifest", "marker", "quiet"] = "manifest"
    marker: str | None = None
    quiet: timedelta | None = None


def parse_completion(value: object) -> CompletionSettings:
    if isinstance(value, CompletionSettings):
        return value
    text = str(value).strip()
    if text == "manifest":
        return CompletionSettings()
    kind, _, arg = text.partition(":")
    if kind == "marker" and arg and "/" not in arg:
        return CompletionSettings(mode="marker", marker=arg)
    if kind == "quiet" and arg:
        return CompletionSettings(mode="quiet", quiet=parse_duration(arg))
    raise ValueError(f"{text!r} is not a completion mode; write manifest, marker:_SUCCESS or quiet:120s")
