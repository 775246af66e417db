"""The fleet: block: absent means single-pod, its defaults, $POD_NAME, and bad values named with the fix."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from agent.core.errors import ConfigError
from agent.fleet import FleetParams
from agent.infra.config import settings_from_mapping

MODEL = {"name": "m", "source": "gs://b/m", "local_path": "/models/m"}


def _settings(fleet: Any = None) -> Any:
    data: dict[str, Any] = {"models": [MODEL]}
    if fleet is not None:
        data["fleet"] = fleet
    return settings_from_mapping(data)


def test_no_fleet_block_means_single_pod() -> None:
    """Without fleet: the settings carry no fleet at all (the agent behaves exactly as before)."""
    assert _settings().fleet is None


def test_fleet_defaults_and_pod_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty fleet: block is fleet "default", id from $POD_NAME, one slot, one canary baking 60 s."""
    monkeypatch.setenv("POD_NAME", "serving-7d9f-abcde")
    fleet = _settings({}).fleet
    assert (fleet.name, fleet.id, fleet.max_unavailable, fleet.canary) == (
        "default",
        "serving-7d9f-abcde",
        1,
        1,
    )
    params = FleetParams.from_settings(fleet)
    assert (params.canary_bake, params.slot_ttl, params.heartbeat, params.dead_after) == (
        60.0,
        30.0,
        10.0,
        40.0,
    )


def test_fleet_id_falls_back_to_the_hostname() -> None:
    """Without $POD_NAME (scrubbed by the suite) the id is the hostname."""
    assert _settings({}).fleet.id == socket.gethostname()


@pytest.mark.parametrize(("value", "expected"), [(3, 3), ("2", 2), ("10%", "10%"), ("12.5%", "12.5%")])
def test_max_unavailable_is_a_count_or_a_percentage(value: object, expected: object) -> None:
    """max_unavailable accepts a replica count or "N%"."""
    assert _settings({"max_unavailable": value}).fleet.max_unavailable == expected


@pytest.mark.parametrize(
    ("fleet", "expected"),
    [
        ({"max_unavailable": 0}, "fleet.max_unavailable"),
        ({"max_unavailable": "ten"}, "write e.g. 1 or 10%"),
        ({"max_unavailable": "150%"}, "fleet.max_unavailable"),
        ({"name": "prod/eu"}, "letters, digits"),
        ({"id": ""}, "fleet.id"),
        ({"slot_ttl": "1s"}, "slot_ttl must be at least 3s"),
        ({"dead_after": "5s"}, "at least two heartbeats"),
        ({"canary": -1}, "fleet.canary"),
        ({"canaries": 2}, "fleet.canaries: unknown key"),
    ],
)
def test_bad_fleet_values_are_named(fleet: dict[str, Any], expected: str) -> None:
    """Each bad fleet value is a ConfigError naming the key and the fix."""
    with pytest.raises(ConfigError) as caught:
        _settings(fleet)
    assert expected in str(caught.value)
