"""The agent's configuration: pydantic models of the YAML file, and the only place that reads env vars.

Unknown keys are errors that name the key (a typo must never be silently ignored), durations are written
like ``30s``/``10m``/``1h30m``, and every field documents its unit, default and effect.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.core.cron import CronWindow
from agent.core.errors import ConfigError
from agent.infra.config_base import Duration, Size, _Strict
from agent.infra.config_fleet import FleetSettings
from agent.infra.config_policy import (
    CompletionSettings,
    PolicySettings,
    parse_completion,
)


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
    memory_limit: Size | None = None
    """Memory TF Serving may use (its container's ``resources.limits.memory``, e.g. ``4Gi``). Before a
    candidate is loaded the agent estimates what it will hold: every loaded version's size on disk times
    ``memory_factor``, plus the candidate's. When the 2× peak of a swap (old and new loaded together) does not
    fit, the candidate is refused with the reason (a counted retry, not a quarantine); None checks nothing."""
    memory_factor: float = Field(1.35, gt=0)
    """Resident bytes per byte on disk of a loaded version (docs/deploying.md: measured with
    ``python -m benchmarks.memory``; 1.04-1.34 for the test models). Measure your own models the same way."""
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
    validation: Literal["shadow", "in_place"] = "shadow"
    """Where a candidate is validated. ``shadow``: loaded as ``<name>__candidate`` first, then again beside
    the old version for the swap (two loads). ``in_place``: loaded once beside the old version, validated by
    explicit version, then the labels move (one load; ADR 23). Only for clients that address
    the model by label: a request naming neither version nor label gets the highest AVAILABLE version
    (docs/tfserving-behaviour.md#b16), which would be the candidate before it is validated."""
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
    def _in_place_needs_labels(self) -> ModelSettings:
        if self.validation == "in_place" and not self.labels:
            raise ValueError(
                "validation: in_place needs labels: with none, clients' requests get the highest AVAILABLE "
                "version (docs/tfserving-behaviour.md#b16), i.e. the candidate before it is validated; set "
                "labels: [stable] (and have clients ask for it), or validation: shadow"
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
