"""The YAML config: defaults, durations, completion modes, and errors that name the key."""

from __future__ import annotations

# B-numbers are TF Serving behaviours: docs/tfserving-behaviour.md
import re
from datetime import timedelta
from pathlib import Path

import pytest

from agent.core.errors import ConfigError
from agent.infra.config import (
    azure_account_url,
    azure_connection_string,
    load_settings,
    settings_from_mapping,
)
from agent.infra.config_base import parse_duration

MODEL = {"name": "m", "source": "file:///srv/bucket/m", "local_path": "/models/m"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("250ms", 0.25), ("2d", 172800), (45, 45), ("1.5s", 1.5)],
)
def test_durations(text: object, seconds: float) -> None:
    """Durations accept s/m/h/d/ms units, combinations and plain numbers of seconds."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "ten seconds", "5x", "-3", "1m 2"])
def test_bad_duration_says_how_to_write_one(text: object) -> None:
    """A bad duration is rejected with an example of a good one."""
    with pytest.raises(ValueError, match=r"30s|negative"):
        parse_duration(-3 if text == "-3" else text)


def test_defaults_match_architecture() -> None:
    """A minimal model gets the documented defaults."""
    s = settings_from_mapping({"models": [MODEL]})
    m = s.models[0]
    assert s.serving.address == "localhost:8500"
    assert s.http.port == 9464
    assert m.schedule.interval == timedelta(seconds=30)
    assert m.completion.mode == "manifest"
    assert m.policy.versions == "newer"
    assert m.labels == ("stable",)
    assert m.keep_versions == 2


@pytest.mark.parametrize(
    ("value", "mode", "arg"),
    [("manifest", "manifest", None), ("marker:_SUCCESS", "marker", "_SUCCESS"), ("quiet:2m", "quiet", 120)],
)
def test_completion_modes(value: str, mode: str, arg: object) -> None:
    """completion parses manifest | marker:<name> | quiet:<duration>."""
    c = settings_from_mapping({"models": [{**MODEL, "completion": value}]}).models[0].completion
    assert c.mode == mode
    assert (c.marker or (c.quiet.total_seconds() if c.quiet else None)) == arg


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"polcy": {}}, "models.0.polcy: unknown key"),
        ({"source": "hdfs://b/m"}, "gs://, s3://, az://, file://"),
        ({"endpoint_url": "http://minio:9000"}, "endpoint_url is for s3:// and az:// sources only"),
        ({"source": "s3://b/m", "endpoint_url": "minio:9000"}, "write e.g. http://minio:9000"),
        ({"local_path": "models/m"}, "absolute path"),
        ({"completion": "marker:"}, "marker:_SUCCESS"),
        ({"policy": {"window": "* * *"}}, "5 fields"),
        ({"policy": {"versions": "oldest"}}, "policy.versions"),
        ({"schedule": {"interval": "0s"}}, "interval must be positive"),
        ({"schedule": {"cron": "61 * * * *"}}, "bad minute field (takes 0-59)"),
        ({"name": "../evil"}, "usable model name"),
        ({"keep_versions": 0}, "keep_versions"),
        ({"policy": {"window_timezone": "Mars/Olympus"}}, "'Mars/Olympus' is not an IANA time zone"),
        ({"policy": {"replace_below": {"accurcy": 0.9}}}, "unknown metric(s) ['accurcy']"),
        ({"policy": {"replace_below": {"accuracy": 0.9}}}, "set golden, or give a live metric"),
        ({"policy": {"replace_below": {"query": "up"}}}, "exactly one of below: (accuracy-like) or above:"),
        ({"policy": {"replace_below": {"query": "up", "below": 1, "abov": 2}}}, "abov: Extra inputs"),
        ({"policy": {"rescore_interval": "0s"}}, "rescore_interval must be positive"),
        ({"policy": {"replace_below": {"query": "up", "below": 0.8}}}, "set monitoring.prometheus_url"),
    ],
)
def test_errors_name_the_key(patch: dict[str, object], needle: str) -> None:
    """Every invalid value is reported with its key path and what to write instead."""
    with pytest.raises(ConfigError, match=None) as info:
        settings_from_mapping({"models": [{**MODEL, **patch}]})
    assert needle in str(info.value)


def test_performance_policy_sources() -> None:
    """replace_below takes golden floors (with a golden file) or a live PromQL floor (with Prometheus)."""
    golden = settings_from_mapping(
        {"models": [{**MODEL, "golden": "/g.json", "policy": {"replace_below": {"accuracy": 0.8}}}]}
    ).models[0]
    assert (golden.policy.golden_floor, golden.policy.live_floor) == ({"accuracy": 0.8}, None)
    assert golden.policy.rescore_interval.total_seconds() == 600
    live = settings_from_mapping(
        {
            "monitoring": {"prometheus_url": "http://prometheus:9090"},
            "models": [
                {**MODEL, "policy": {"replace_below": {"query": "up", "above": 0.1, "name": "errors"}}}
            ],
        }
    ).models[0]
    floor = live.policy.live_floor
    assert floor is not None
    assert (floor.query, floor.below, floor.above, floor.name) == ("up", None, 0.1, "errors")
    assert live.policy.golden_floor is None


def test_window_names_and_time_zone() -> None:
    """A window written with names in a named zone loads; the zone is a real tzinfo."""
    policy = (
        settings_from_mapping(
            {
                "models": [
                    {
                        **MODEL,
                        "policy": {"window": "* 9-16 * JAN-DEC MON-FRI", "window_timezone": "Europe/Berlin"},
                    }
                ]
            }
        )
        .models[0]
        .policy
    )
    assert str(policy.window_tz) == "Europe/Berlin"


def test_s3_and_az_sources_take_an_endpoint_url() -> None:
    """s3:// and az:// are sources; endpoint_url (an S3-compatible endpoint, an Azure account URL) is kept."""
    models = settings_from_mapping(
        {
            "models": [
                {**MODEL, "source": "s3://b/m/", "endpoint_url": "http://minio:9000"},
                {**MODEL, "name": "a", "source": "az://c/a", "local_path": "/models/a"},
            ]
        }
    ).models
    found = [(m.source, m.endpoint_url) for m in models]
    assert found == [("s3://b/m", "http://minio:9000"), ("az://c/a", None)]


def test_azure_credentials_come_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """AZURE_STORAGE_CONNECTION_STRING is passed through; AZURE_STORAGE_ACCOUNT names the account URL."""
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT", raising=False)
    assert (azure_connection_string(), azure_account_url()) == (None, None)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=x;AccountKey=eA==")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "models")
    assert azure_connection_string() == "AccountName=x;AccountKey=eA=="
    assert azure_account_url() == "https://models.blob.core.windows.net"


def test_duplicate_models_rejected() -> None:
    """Two models with the same name are an error naming the name."""
    with pytest.raises(ConfigError, match="repeated: m"):
        settings_from_mapping({"models": [MODEL, {**MODEL, "local_path": "/models/m2"}]})


def test_load_settings_reports_file_problems(tmp_path: Path) -> None:
    """Missing files, bad YAML and a non-mapping top level each get a clear error naming the file."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- 1\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_settings(bad)


def test_architecture_example_loads(tmp_path: Path) -> None:
    """The config example in docs/architecture.md loads as written."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "agent.yaml"
    path.write_text(example)
    s = load_settings(path)
    assert s.models[0].schedule.jitter == timedelta(seconds=5)
    assert s.serving.load_timeout == timedelta(seconds=600)


def _notified(notifications: object, source: str = "gs://ml/m") -> dict[str, object]:
    return {
        "models": [{"name": "m", "source": source, "local_path": "/models/m", "notifications": notifications}]
    }


def test_notifications_take_a_topic_or_a_subscription() -> None:
    """notifications: {topic: projects/P/topics/T} or {subscription: projects/P/subscriptions/S} load."""
    topic = settings_from_mapping(_notified({"topic": "projects/p1/topics/gcs-events"}))
    assert topic.models[0].notifications is not None
    assert topic.models[0].notifications.topic == "projects/p1/topics/gcs-events"
    sub = settings_from_mapping(_notified({"subscription": "projects/p1/subscriptions/mine"}))
    assert sub.models[0].notifications is not None
    assert sub.models[0].notifications.subscription == "projects/p1/subscriptions/mine"


@pytest.mark.parametrize(
    ("notifications", "source", "expected"),
    [
        ({"topic": "gcs-events"}, "gs://ml/m", "write projects/P/topics/T"),
        ({"subscription": "projects/p1/topics/t"}, "gs://ml/m", "write projects/P/subscriptions/S"),
        ({}, "gs://ml/m", "give exactly one of topic"),
        (
            {"topic": "projects/p/topics/ttt", "subscription": "projects/p/subscriptions/sss"},
            "gs://ml/m",
            "give exactly one of topic",
        ),
        ({"topic": "projects/p1/topics/ttt"}, "file:///b/m", "notifications need a gs:// source"),
        ({"topci": "projects/p1/topics/ttt"}, "gs://ml/m", "notifications.topci: unknown key"),
    ],
)
def test_bad_notifications_are_named(notifications: object, source: str, expected: str) -> None:
    """A malformed path, both or neither, a file:// source or a typo: a ConfigError naming the fix."""
    with pytest.raises(ConfigError, match=re.escape(expected)):
        settings_from_mapping(_notified(notifications, source))


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10Gi", 10 * 2**30),
        ("500Mi", 500 * 2**20),
        ("2G", 2 * 10**9),
        ("1.5Ki", 1536),
        (4096, 4096),
        ("7", 7),
    ],
)
def test_volume_limit_takes_kubernetes_quantities(text: object, size: int) -> None:
    """serving.local_volume_limit reads the emptyDir's sizeLimit as written in a manifest."""
    s = settings_from_mapping({"serving": {"local_volume_limit": text}, "models": [MODEL]})
    assert s.serving.local_volume_limit == size


@pytest.mark.parametrize("text", ["10GB", "ten", "-1Gi", "0", "1 Gi Mi", ""])
def test_bad_volume_limit_names_the_value_and_the_fix(text: str) -> None:
    """A size that does not parse is a ConfigError naming the key, the value and how to write one."""
    with pytest.raises(ConfigError) as err:
        settings_from_mapping({"serving": {"local_volume_limit": text}, "models": [MODEL]})
    assert "serving.local_volume_limit" in str(err.value)
    assert repr(text) in str(err.value)
    assert "10Gi" in str(err.value)


def test_gate_defaults() -> None:
    """The gates default to: no volume limit, reject signature breaks, wedge after 3 deadlines, no liveness,
    and a ReloadConfig deadline of load_timeout + 30s."""
    s = settings_from_mapping({"serving": {"load_timeout": "60s"}, "models": [MODEL]})
    assert s.serving.local_volume_limit is None
    assert s.models[0].policy.signature_change == "reject"
    assert (s.serving.wedge_reload_deadlines, s.serving.wedge_liveness) == (3, False)
    assert s.serving.reload_deadline == timedelta(seconds=90)
    assert settings_from_mapping({"serving": {"reload_timeout": "5s"}}).serving.reload_deadline == timedelta(
        seconds=5
    )


def _validated(**model: object) -> dict[str, object]:
    return {"models": [{"name": "m", "source": "file:///b/m", "local_path": "/models/m", **model}]}


def test_validation_defaults_to_the_shadow_and_takes_in_place() -> None:
    """``validation`` is ``shadow`` unless set; ``in_place`` loads with the default label."""
    assert settings_from_mapping(_validated()).models[0].validation == "shadow"
    assert settings_from_mapping(_validated(validation="in_place")).models[0].validation == "in_place"


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"validation": "in_place", "labels": []}, "validation: in_place needs labels"),
        ({"validation": "in_place", "labels": []}, "or validation: shadow"),
        ({"validation": "inplace"}, "validation"),
    ],
)
def test_bad_validation_is_named(model: dict[str, object], expected: str) -> None:
    """in_place without labels (B16: the candidate would answer unlabelled requests), a typo: ConfigError."""
    with pytest.raises(ConfigError, match=re.escape(expected)):
        settings_from_mapping(_validated(**model))
