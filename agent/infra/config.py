"""The agent's configuration: pydantic models of the YAML file, and the only place that reads env vars.

Unknown keys are errors that name the key (a typo must never be silently ignored), durations are written
like ``30s``/``10m``/``1h30m``, and every field documents its unit, default and effect.
"""

from __future__ import annotations

import os
import re
import socket
import zoneinfo
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.core.cron import CronWindow
from agent.core.errors import ConfigError
from agent.core.evidence import LiveFloor
from agent.core.fleet_records import check_fleet_name
from agent.core.golden import METRICS

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


class ServingSettings(_Strict):
    """How to reach and drive the TF Serving process beside the agent."""

    address: str = "localhost:8500"
    """TF Serving's gRPC address (host:port or unix:/path)."""
    model_config_file: Path = Path("/models/models.config")
    """The ModelServerConfig file the agent owns; start TF Serving with --model_config_file=<this>."""
    load_timeout: Duration = timedelta(seconds=600)
    """How long a version may take to become AVAILABLE before the attempt counts as failed."""
    rpc_timeout: Duration = timedelta(seconds=30)
    """Deadline of a single status or predict RPC."""
    reload_timeout: Duration | None = None
    """Deadline of one ReloadConfig, which waits for new models (the shadow) to load
    (docs/tfserving-behaviour.md#b12); default ``load_timeout`` plus 30s. A wedge is noticed after
    ``wedge_reload_deadlines`` of these."""
    local_volume_limit: Size | None = None
    """Size of the volume the models live on (the emptyDir's ``sizeLimit``, e.g. ``10Gi``). Before a download
    the agent adds up what is on it (every model's local_path, staging included) plus the candidate and
    refuses (a retry, not a quarantine) when that would exceed it; None checks only the disk's free space."""
    wedge_reload_deadlines: int = Field(3, ge=1)
    """Consecutive ReloadConfig deadlines, while GetModelStatus still answers, after which TF Serving's
    reloads count as wedged (tfs_agent_reload_wedged 1, a reason in /status)."""
    monitoring_url: str | None = None
    """TF Serving's Prometheus endpoint for live gates, e.g.
    http://localhost:8501/monitoring/prometheus/metrics (TF Serving with --monitoring_config_file)."""
    wedge_liveness: bool = False
    """Answer 503 on ``GET /livez/tfserving`` while reloads are wedged, for TF Serving's livenessProbe (the
    kubelet then restarts the server container; see docs/operations.md for the risks). Off: always 200."""

    @property
    def reload_deadline(self) -> timedelta:
        """The ReloadConfig deadline in effect."""
        return self.reload_timeout or self.load_timeout + timedelta(seconds=30)


class HttpSettings(_Strict):
    """The agent's own HTTP endpoint: /metrics /healthz /readyz /status and admin POSTs."""

    host: str = "0.0.0.0"
    port: int = Field(9464, ge=0, le=65535)
    """0 picks a free port (tests); the chosen port is logged."""
    admin_token_file: Path | None = None
    """File holding the bearer token for admin POSTs; without it every admin request is refused."""


class ScheduleSettings(_Strict):
    """When a model's source is polled: a fixed interval (with jitter) or a cron expression."""

    interval: Duration | None = timedelta(seconds=30)
    jitter: Duration = timedelta(0)
    """Random delay up to this much (sub-second too) added to each run, so many pods do not poll the bucket
    in lockstep."""
    cron: str | None = None
    """A crontab expression (5 fields, UTC; names such as ``MON-FRI`` and 7 for Sunday work, as in
    ``policy.window``); replaces ``interval`` when set."""

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleSettings:
        if self.cron is not None:
            CronWindow(self.cron)  # same five-field syntax; fail at load time, not at first run
        if self.cron is None and self.interval is None:
            raise ValueError("give either interval or cron")
        if self.interval is not None and self.interval.total_seconds() <= 0:
            raise ValueError("interval must be positive, e.g. 30s")
        return self


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


_TOPIC = re.compile(r"projects/[a-z][a-z0-9.:-]{1,62}/topics/[A-Za-z][A-Za-z0-9._~+%-]{2,254}")
_SUBSCRIPTION = re.compile(r"projects/[a-z][a-z0-9.:-]{1,62}/subscriptions/[A-Za-z][A-Za-z0-9._~+%-]{2,254}")


class NotificationSettings(_Strict):
    """GCS change notifications through Pub/Sub: an event wakes the model's pass at once; ``schedule`` stays
    as reconciliation (docs/notifications.md). Give exactly one of the two."""

    topic: str | None = None
    """``projects/P/topics/T`` the bucket notifies: the agent creates its own subscription (one per pod,
    filtered to the model's prefix, expiring when abandoned) and deletes it on a clean shutdown."""
    subscription: str | None = None
    """``projects/P/subscriptions/S`` made by the operator: used as it is, never created or deleted."""

    @model_validator(mode="after")
    def _one(self) -> NotificationSettings:
        if (self.topic is None) == (self.subscription is None):
            raise ValueError(
                "give exactly one of topic: projects/P/topics/T or subscription: projects/P/subscriptions/S"
            )
        if self.topic is not None and not _TOPIC.fullmatch(self.topic):
            raise ValueError(f"topic {self.topic!r} is not a topic path; write projects/P/topics/T")
        if self.subscription is not None and not _SUBSCRIPTION.fullmatch(self.subscription):
            raise ValueError(
                f"subscription {self.subscription!r} is not a subscription path; "
                "write projects/P/subscriptions/S"
            )
        return self


SOURCE_SCHEMES = ("gs://", "s3://", "az://", "file://")


class ModelSettings(_Strict):
    """One model the agent keeps up to date."""

    name: str
    source: str
    """Bucket prefix holding integer version folders: gs://bucket/prefix, s3://bucket/prefix,
    az://container/prefix or file:///abs/dir."""
    endpoint_url: str | None = None
    """s3:// only: the S3-compatible endpoint (MinIO, Ceph, ...), over ``AWS_ENDPOINT_URL``; az:// only: the
    account URL (``https://<account>.blob.core.windows.net``), used with DefaultAzureCredential. Also used for
    a golden file on the same scheme. None: the SDK's default."""
    local_path: Path
    """The model's base_path on the volume shared with TF Serving (absolute)."""
    schedule: ScheduleSettings = ScheduleSettings()
    completion: Annotated[CompletionSettings, BeforeValidator(parse_completion)] = CompletionSettings()
    golden: str | None = None
    """Golden file URI (gs://, s3://, az://, file:// or a path); without it, the load plus a smoke Predict."""
    policy: PolicySettings = PolicySettings()
    labels: tuple[str, ...] = ("stable",)
    """Version labels moved to each promoted version (clients may ask for ``version_label: stable``)."""
    keep_versions: int = Field(2, ge=1)
    """Versions kept on disk: the serving one plus this many minus one; 1 keeps no rollback target."""
    download_concurrency: int = Field(8, ge=1, le=64)
    notifications: NotificationSettings | None = None
    """Wake the pass on the bucket's Pub/Sub notifications (gs:// sources only); absent: polling alone."""

    @model_validator(mode="after")
    def _notifications_need_gcs(self) -> ModelSettings:
        if self.notifications is not None and not self.source.startswith("gs://"):
            raise ValueError(
                f"notifications need a gs:// source, not {self.source}; remove notifications for this model"
            )
        return self

    @model_validator(mode="after")
    def _floor_needs_golden(self) -> ModelSettings:
        if self.policy.golden_floor and self.golden is None:
            raise ValueError(
                "policy.replace_below scores the serving version on the golden data: set golden, or give "
                "a live metric instead ({query: <PromQL>, below: <number>})"
            )
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError(f"{value!r} is not a usable model name (letters, digits, _ . -)")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not value.startswith(SOURCE_SCHEMES):
            raise ValueError(f"{value!r}: source must start with {', '.join(SOURCE_SCHEMES)}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _endpoint(self) -> ModelSettings:
        if self.endpoint_url is None:
            return self
        if not self.source.startswith(("s3://", "az://")):
            raise ValueError(f"endpoint_url is for s3:// and az:// sources only, not {self.source!r}")
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", self.endpoint_url):
            raise ValueError(f"endpoint_url {self.endpoint_url!r} is not a URL; write e.g. http://minio:9000")
        return self

    @field_validator("local_path")
    @classmethod
    def _local(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"{value} must be an absolute path (TF Serving rejects relative base paths)")
        return value


def _pod_name() -> str:
    """This replica's default fleet id: $POD_NAME (the Kubernetes downward API), then the hostname."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def _max_unavailable(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    text = str(value).strip()
    if re.fullmatch(r"\d+", text) and int(text) >= 1:
        return int(text)
    if re.fullmatch(r"\d+(\.\d+)?%", text) and 0 < float(text[:-1]) <= 100:
        return text
    raise ValueError(f"{value!r} is not a replica count or percentage; write e.g. 1 or 10%")


class FleetSettings(_Strict):
    """Several replicas of one model roll a version in turn through records in the bucket (docs/fleet.md).

    Absent: every agent acts alone, exactly as before."""

    name: str = "default"
    """Which fleet: staging and prod may read one bucket, never one fleet (records under _fleet/<name>/)."""
    id: str = Field(default_factory=_pod_name)
    """This replica's ledger name; default $POD_NAME, then the hostname. Unique within the fleet."""
    max_unavailable: Annotated[int | str, BeforeValidator(_max_unavailable)] = 1
    """Replicas loading or swapping at once: a count, or a percentage of live pods ("10%", at least one)."""
    canary: int = Field(1, ge=0)
    """Replicas that switch and bake on live traffic before the rest move; 0 skips the canary phase."""
    canary_bake: Duration = timedelta(seconds=60)
    """How long each canary serves the new version on live traffic before the rest may follow."""
    slot_ttl: Duration = timedelta(seconds=30)
    """A slot not renewed for this long (by the store's clock) is taken over; renewed every third of it."""
    heartbeat: Duration = timedelta(seconds=10)
    """How often a pod rewrites its ledger entry (also while idle)."""
    dead_after: Duration | None = None
    """A pod silent this long is not live (default 4 heartbeats): it holds no release open."""
    forget_after: Duration = timedelta(hours=1)
    """A silent pod's ledger entry is removed after this long."""

    @field_validator("name", "id")
    @classmethod
    def _names(cls, value: str) -> str:
        return check_fleet_name(value, "fleet name or id")

    @model_validator(mode="after")
    def _times(self) -> FleetSettings:
        if self.slot_ttl < timedelta(seconds=3):
            raise ValueError("slot_ttl must be at least 3s (it is renewed every third of it)")
        if self.heartbeat <= timedelta(0):
            raise ValueError("heartbeat must be positive, e.g. 10s")
        if self.dead_after is not None and self.dead_after < 2 * self.heartbeat:
            raise ValueError("dead_after must be at least two heartbeats")
        if self.forget_after < self.live_window:
            raise ValueError("forget_after must be longer than dead_after")
        return self

    @property
    def live_window(self) -> timedelta:
        """dead_after, or four heartbeats."""
        return self.dead_after if self.dead_after is not None else 4 * self.heartbeat


class MonitoringSettings(_Strict):
    """Where live evidence comes from (``policy.replace_below: {query: ...}``)."""

    prometheus_url: str | None = None
    """Prometheus's base URL, e.g. ``http://prometheus:9090`` (its HTTP API answers under /api/v1)."""
    query_timeout: Duration = timedelta(seconds=10)
    """Deadline of one query; a slower answer counts as "Prometheus unreachable" and holds the candidate."""

    @field_validator("prometheus_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r}: write the URL with its scheme, e.g. http://prometheus:9090")
        return value


class AgentSettings(_Strict):
    """The whole agent config file."""

    serving: ServingSettings = ServingSettings()
    state_dir: Path = Path("/models/.tfs-agent")
    http: HttpSettings = HttpSettings()
    candidate_suffix: str = "__candidate"
    """The shadow model's name is ``<model><suffix>`` while a candidate is validated."""
    log_format: Literal["text", "json"] = "text"
    fleet: FleetSettings | None = None
    """Coordinate with the other replicas through the bucket; absent: single-pod behaviour."""
    monitoring: MonitoringSettings = MonitoringSettings()
    models: tuple[ModelSettings, ...] = ()

    @model_validator(mode="after")
    def _gates(self) -> AgentSettings:
        gated = [m.name for m in self.models if m.policy.live_gates is not None]
        if gated and self.serving.monitoring_url is None:
            raise ValueError(
                f"policy.live_gates of {', '.join(gated)} needs serving.monitoring_url, e.g. "
                "http://localhost:8501/monitoring/prometheus/metrics"
            )
        return self

    @model_validator(mode="after")
    def _unique(self) -> AgentSettings:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        paths = [m.local_path for m in self.models]
        if len(set(paths)) != len(paths):
            raise ValueError("two models share a local_path; give each its own directory")
        live = [m.name for m in self.models if m.policy.live_floor is not None]
        if live and self.monitoring.prometheus_url is None:
            raise ValueError(
                f"model(s) {', '.join(live)} read a live metric (replace_below.query): "
                "set monitoring.prometheus_url, e.g. http://prometheus:9090"
            )
        return self

    def model(self, name: str) -> ModelSettings:
        for m in self.models:
            if m.name == name:
                return m
        raise ConfigError(f"no model named {name!r} in the config (known: {', '.join(self.model_names)})")

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)


def _describe(err: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid configuration"]
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key; check its spelling against the documented keys")
        else:
            lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def settings_from_mapping(data: Mapping[str, Any], origin: str = "config") -> AgentSettings:
    """Validate a parsed config; raise ConfigError naming each bad key."""
    try:
        return AgentSettings.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(_describe(err, origin)) from err


def load_settings(path: Path) -> AgentSettings:
    """Read and validate the YAML config at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return settings_from_mapping(data, str(path))


ENV_PREFIX = "TFS_AGENT_"


def env(name: str, default: str | None = None) -> str | None:
    """Read ``TFS_AGENT_<name>``; env vars are read here and in cli.py only ($POD_NAME: ``_pod_name``)."""
    return os.environ.get(ENV_PREFIX + name, default)


def pod_name() -> str:
    """This replica's name: ``$POD_NAME`` (the Kubernetes downward API), else the hostname."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def azure_connection_string() -> str | None:
    """``AZURE_STORAGE_CONNECTION_STRING`` (az:// with an account key or SAS, or Azurite), if set."""
    return os.environ.get("AZURE_STORAGE_CONNECTION_STRING") or None


def azure_account_url() -> str | None:
    """``https://<AZURE_STORAGE_ACCOUNT>.blob.core.windows.net`` (as the az CLI reads it), if set."""
    account = os.environ.get("AZURE_STORAGE_ACCOUNT")
    return f"https://{account}.blob.core.windows.net" if account else None
