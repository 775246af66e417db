"""The YAML config: defaults, durations, completion modes, and errors that name the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agent.core.errors import ConfigError
from agent.infra.config import load_settings, parse_duration, settings_from_mapping

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
        ({"source": "s3://b/m"}, "gs:// or file://"),
        ({"local_path": "models/m"}, "absolute path"),
        ({"completion": "marker:"}, "marker:_SUCCESS"),
        ({"policy": {"window": "* * *"}}, "5 fields"),
        ({"policy": {"versions": "oldest"}}, "policy.versions"),
        ({"schedule": {"interval": "0s"}}, "interval must be positive"),
        ({"schedule": {"cron": "61 * * * *"}}, "outside 0-59"),
        ({"name": "../evil"}, "usable model name"),
        ({"keep_versions": 0}, "keep_versions"),
    ],
)
def test_errors_name_the_key(patch: dict[str, object], needle: str) -> None:
    """Every invalid value is reported with its key path and what to write instead."""
    with pytest.raises(ConfigError, match=None) as info:
        settings_from_mapping({"models": [{**MODEL, **patch}]})
    assert needle in str(info.value)


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
