"""Pure policy: which version, if any, a pass should try to bring into service now, and why.

A function of (versions available, what the agent recorded, the policy, now) with no I/O, so every policy —
version ordering, operator pin, promotion window, minimum interval, "replace only when the serving model
underperforms" — is tested with a fake clock and plain values.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from agent.core.cron import CronWindow
from agent.core.evidence import Evidence, Judgement, LiveFloor, judge_live, judge_score


class Action(enum.Enum):
    IDLE = "idle"
    """Nothing to do: the serving version is the one the policy wants."""
    PROMOTE = "promote"
    """Stage, validate and promote ``version``."""
    WAIT = "wait"
    """A candidate exists but a policy holds it back for now."""


@dataclass(frozen=True)
class Observation:
    """Everything the planner may look at."""

    available: frozenset[int]
    """Versions that are complete in the bucket or already verified on disk."""
    serving: int | None
    quarantined: Mapping[int, str] = field(default_factory=dict)
    pinned: int | None = None
    last_promotion: datetime | None = None
    evidence: Evidence = field(default_factory=Evidence)
    """The serving version's latest golden score and live reading (the performance policy's input)."""


@dataclass(frozen=True)
class Policy:
    """The planner's view of PolicySettings (kept free of pydantic so the core stays plain)."""

    versions: str = "newer"
    window: str | None = None
    window_tz: tzinfo = UTC
    min_interval: timedelta = timedelta(0)
    replace_below: Mapping[str, float] | None = None
    """Golden-metric floors (accuracy below, mae/rmse above)."""
    replace_live: LiveFloor | None = None
    """A live metric's floor, read from Prometheus."""


@dataclass(frozen=True)
class Plan:
    action: Action
    version: int | None = None
    reason: str = ""
    not_before: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """As /status shows it (``last_plan``)."""
        return {"action": self.action.value, "version": self.version, "reason": self.reason}


def plan(obs: Observation, policy: Policy, now: datetime) -> Plan:
    """Decide this pass's action. Operator pins bypass time gates; a first deployment is never held back."""
    target = _target(obs, policy)
    if isinstance(target, Plan):
        return target
    if obs.pinned is not None or obs.serving is None:
        why = "operator pin" if obs.pinned is not None else "nothing serves yet"
        return Plan(Action.PROMOTE, target, f"{why}: version {target}")
    held = _held(obs, policy, now, target)
    if held is not None:
        return held
    why = f"version {target} is {_relation(target, obs.serving)}"
    performance = _performance(obs, policy, now)
    if performance is None:
        return Plan(Action.PROMOTE, target, why)
    if not performance.degraded:
        return Plan(Action.WAIT, target, f"serving version still performs: {performance.reason}")
    return Plan(Action.PROMOTE, target, f"{why}; {performance.reason}")


def _relation(target: int, serving: int) -> str:
    return f"newer than serving {serving}" if target > serving else f"the latest (serving {serving})"


def _target(obs: Observation, policy: Policy) -> int | Plan:
    if obs.pinned is not None:
        return _pinned_target(obs)
    if policy.versions == "pinned":
        return Plan(
            Action.IDLE, reason="policy 'pinned' and no version is pinned (tfs-agent pin MODEL VERSION)"
        )
    eligible = sorted(v for v in obs.available if v not in obs.quarantined)
    if policy.versions == "newer" and obs.serving is not None:
        eligible = [v for v in eligible if v > obs.serving]
    if not eligible:
        skipped = sorted(v for v in obs.available if v in obs.quarantined)
        note = f" (quarantined: {', '.join(map(str, skipped))})" if skipped else ""
        return Plan(Action.IDLE, reason=f"no eligible version{note}")
    best = eligible[-1]
    if best == obs.serving:
        return Plan(Action.IDLE, reason=f"version {best} serves and is the latest")
    return best


def _pinned_target(obs: Observation) -> int | Plan:
    pin = obs.pinned
    assert pin is not None
    if pin == obs.serving:
        return Plan(Action.IDLE, reason=f"pinned version {pin} serves")
    if pin in obs.quarantined:
        return Plan(
            Action.IDLE,
            reason=f"pinned version {pin} is quarantined ({obs.quarantined[pin]}); clear it to retry",
        )
    if pin not in obs.available:
        return Plan(Action.IDLE, reason=f"pinned version {pin} is not complete in the bucket nor on disk")
    return pin


def _held(obs: Observation, policy: Policy, now: datetime, target: int) -> Plan | None:
    if policy.window and not CronWindow(policy.window, policy.window_tz).contains(now):
        zone = "" if policy.window_tz is UTC else f" ({policy.window_tz})"
        return Plan(Action.WAIT, target, f"outside the promotion window '{policy.window}'{zone}")
    if obs.last_promotion is not None and policy.min_interval:
        ready_at = obs.last_promotion + policy.min_interval
        if now < ready_at:
            return Plan(Action.WAIT, target, f"min_interval {policy.min_interval} not elapsed", ready_at)
    return None


def _performance(obs: Observation, policy: Policy, now: datetime) -> Judgement | None:
    """The performance policy (docs/policies.md): replace the serving version only once its evidence says
    it performs below the floor — its latest golden score on the data the candidate is scored on, or a
    live metric.
    With both configured, either one crossing replaces it; unreadable evidence never does."""
    views = []
    if policy.replace_below:
        ev = obs.evidence
        views.append(
            judge_score(ev.score, policy.replace_below, generation=ev.golden_generation, now=now.timestamp())
        )
    if policy.replace_live is not None:
        views.append(judge_live(obs.evidence.live, policy.replace_live, now=now.timestamp()))
    if not views:
        return None
    crossed = [v for v in views if v.degraded]
    return Judgement(bool(crossed), "; ".join(v.reason for v in (crossed or views)))
