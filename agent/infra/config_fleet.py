"""The ``fleet:`` block: several replicas of one model rolling a version in turn (docs/fleet.md). The only
other module besides config.py that reads an environment variable ($POD_NAME)."""

from __future__ import annotations

import os
import re
import socket
from datetime import timedelta
from typing import Annotated

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from agent.core.fleet_records import check_fleet_name
from agent.infra.config_base import Duration, _Strict


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


class DrainSettings(_Strict):
    """Take the pod out of traffic while it loads and swaps (fleet.drain; docs/deploying.md#draining)."""

    enabled: bool = False
    wait: Duration = timedelta(seconds=5)
    """Longest wait, after /readyz turns 503, for TF Serving to see no more requests (the load balancer's
    health check must notice first: give at least its interval x fall count)."""
    min_ready: int = Field(1, ge=0)
    """Never drain when fewer than this many other pods of the fleet are ready: swap in place instead."""


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
    drain: DrainSettings = DrainSettings()
    """Leave the traffic while holding a slot: not ready, wait for quiet, load and swap, ready again."""

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
