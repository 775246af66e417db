"""The fleet protocol at scale on a simulated clock: N pods, one in-memory store that behaves like GCS.

The same ``FleetCoordinator`` and ``decide`` the agent runs; only the pipeline's work (validate, load, bake)
is simulated as a duration with a scripted outcome. Each pod has its own skewed clock, polls on its own
jittered schedule and counts its own bucket requests. Unit tests drive small fleets through it; ``python -m
benchmarks.fleet --simulate 500`` drives a large one and prints the figures.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.adapters.sources.base import Expect, Record, RecordInfo, RecordStore
from agent.adapters.sources.memory import MemoryRecordStore
from agent.core.fleet_records import RELEASE_NAME, LedgerEntry, Release, decode
from agent.fleet.coordinator import FleetCoordinator
from agent.fleet.decide import Action, FleetStep, PodState, decide
from agent.fleet.view import FleetParams
from agent.infra.clock import Clock, ManualClock

LIST_PAGE = 1000  # GCS returns at most 1000 names per listing request
PIPELINE = frozenset({Action.VALIDATE, Action.SWITCH, Action.BAKE, Action.ROLL_BACK})
_MAX_STEPS = 8  # bucket steps per wake-up before the pod yields (a real pass does a few, then sleeps)


@dataclass
class SkewedClock:
    """A pod's own clock: the store's time plus a constant offset (its skew against the store)."""

    base: Clock
    offset: float

    def time(self) -> float:
        return self.base.time() + self.offset

    def monotonic(self) -> float:
        return self.base.monotonic()

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)


class CountingStore:
    """A ``RecordStore`` wrapper counting one pod's requests (a listing costs one per 1000 names)."""

    def __init__(self, inner: RecordStore) -> None:
        self.inner = inner
        self.requests: Counter[str] = Counter()

    @property
    def uri(self) -> str:
        return self.inner.uri

    def read(self, name: str) -> Record | None:
        self.requests["read"] += 1
        return self.inner.read(name)

    def write(self, name: str, data: bytes, *, expect: Expect) -> str:
        self.requests["write"] += 1
        return self.inner.write(name, data, expect=expect)

    def list(self, prefix: str = "") -> tuple[RecordInfo, ...]:
        result = self.inner.list(prefix)
        self.requests["list"] += max(1, math.ceil(len(result) / LIST_PAGE))
        return result

    def delete(self, name: str, *, expect: str) -> None:
        self.requests["delete"] += 1
        self.inner.delete(name, expect=expect)


@dataclass(frozen=True)
class Timing:
    """Durations of the pipeline's work and the pods' polling, simulated seconds."""

    validate: float = 20.0
    load: float = 15.0
    poll_idle: float = 30.0
    poll_active: float = 5.0
    """While a release is under way the pipeline polls the fleet this often."""
    jitter: float = 0.5
    """Each wake-up is delayed by up to this fraction of its interval."""


@dataclass
class _Task:
    step: FleetStep
    ends: float


@dataclass
class SimPod:
    """One simulated replica: what it serves, what it is doing, its coordinator and its request counts."""

    name: str
    coordinator: FleetCoordinator
    store: CountingStore
    serving: int | None
    task: _Task | None = None
    next_heartbeat: float = 0.0
    next_poll: float = 0.0
    next_renew: float = 0.0
    served: set[int] = field(default_factory=set)
    alive: bool = True


@dataclass
class Observed:
    """What the simulation saw, from the pods' own actions (not their reports)."""

    validations: Counter[int] = field(default_factory=Counter)
    max_loading: int = 0
    loading_samples: list[tuple[float, int]] = field(default_factory=list)
    phases: list[tuple[float, int, str]] = field(default_factory=list)
    slot_waits: int = 0


class Simulation:
    """A fleet of ``pods`` simulated pods sharing one GCS-like store (1 mutation/object/s, 412, 429)."""

    def __init__(
        self,
        pods: int,
        params: FleetParams,
        *,
        timing: Timing = Timing(),
        seed: int = 0,
        skew: float = 0.0,
        mutation_interval: float = 1.0,
        serving: int | None = 1,
    ) -> None:
        self.clock, self.timing, self.rng = ManualClock(), timing, random.Random(seed)
        self.store = MemoryRecordStore(self.clock, mutation_interval=mutation_interval)
        self.params, self.observed, self._skew = params, Observed(), skew
        self.bad_at: dict[int, str] = {}
        """version → where it fails: "validation" or "canary" (live traffic)."""
        self.candidates: Callable[[SimPod], int | None] = lambda pod: None
        self.pods = [self._pod(i, skew, serving) for i in range(pods)]
        self._queue: list[tuple[float, int]] = []
        for i in range(pods):
            self._schedule(i, self.rng.uniform(0, timing.poll_active))
        self._last_phase: tuple[int, str] | None = None

    def _pod(self, i: int, skew: float, serving: int | None) -> SimPod:
        name = f"pod-{i:04d}"
        store = CountingStore(self.store)
        clock = SkewedClock(self.clock, self.rng.uniform(-skew, skew))
        params = FleetParams(**{**self.params.__dict__, "pod": name})
        return SimPod(name, FleetCoordinator(store, params, clock), store, serving, served={serving or 0})

    def add_pod(self, serving: int | None = None) -> SimPod:
        """A pod joining now (a scale-up or a rescheduled pod with an empty volume)."""
        pod = self._pod(len(self.pods), self._skew, serving)
        self.pods.append(pod)
        self._schedule(len(self.pods) - 1, 0.0)
        return pod

    def kill(self, pod: SimPod) -> None:
        """SIGKILL: the pod stops mid-step; its slot and ledger entry simply stop being renewed."""
        pod.alive = False

    def publish(self, version: int, *, bad_at: str | None = None) -> None:
        """A new complete version in the bucket: every pod's policy sees it as its candidate."""
        if bad_at:
            self.bad_at[version] = bad_at
        self.candidates = lambda pod: version if (pod.serving or 0) < version else None

    def run_until(self, done: Callable[[], bool], *, limit: float) -> float:
        """Advance simulated time until ``done()`` or ``limit`` seconds passed; the elapsed time."""
        start = self.clock.now
        while self._queue and not done() and self.clock.now - start < limit:
            when, index = heapq.heappop(self._queue)
            self.clock.now = max(self.clock.now, when)
            pod = self.pods[index]
            if pod.alive:
                self._schedule(index, self._wake(pod))
        return self.clock.now - start

    def release(self) -> Release | None:
        """The release record as stored (not counted as any pod's request)."""
        data = self.store.peek(RELEASE_NAME)
        return decode(Release, data, origin=RELEASE_NAME) if data is not None else None

    # ---- one pod's wake-up ----

    def _wake(self, pod: SimPod) -> float:
        """Run the pod; return the delay until its next wake-up."""
        now = self.clock.now
        if now >= pod.next_heartbeat:  # on its own timer, as the agent's scheduler would: busy or idle
            pod.coordinator.heartbeat(self._entry(pod))
            pod.next_heartbeat = now + self.params.heartbeat
        if pod.task is not None and now < pod.task.ends:
            self._renew(pod)
            return min(pod.task.ends - now, self.params.slot_ttl / 3, pod.next_heartbeat - now)
        if pod.task is not None:
            self._finish(pod, pod.task.step)
            pod.task = None
            pod.next_poll = now
        if now >= pod.next_poll:
            pod.next_poll = now + self._steps(pod)
        return min(pod.next_poll, pod.next_heartbeat) - now

    def _steps(self, pod: SimPod) -> float:
        state = PodState(pod.serving, self.candidates(pod))
        for _ in range(_MAX_STEPS):
            step = decide(pod.coordinator.observe(state), state)
            if step.action in PIPELINE:
                return self._start(pod, step)
            if step.action in (Action.IDLE, Action.WAIT):
                self.observed.slot_waits += step.action is Action.WAIT and "slot" in step.reason
                return self._interval(pod)
            if not pod.coordinator.apply(step, state):
                return self.rng.uniform(0.5, 2.0)  # lost a race or a 429: observe again shortly
            self._note_phase(pod)
        return 0.1

    def _interval(self, pod: SimPod) -> float:
        view = pod.coordinator.view
        active = view.release is not None and not view.release.phase.settled
        base = self.timing.poll_active if active else self.timing.poll_idle
        return base * (1 + self.rng.uniform(0, self.timing.jitter))

    def _start(self, pod: SimPod, step: FleetStep) -> float:
        duration = {
            Action.VALIDATE: self.timing.validate,
            Action.SWITCH: self.timing.load,
            Action.ROLL_BACK: self.timing.load,
            Action.BAKE: self.params.canary_bake,
        }[step.action]
        pod.task = _Task(step, self.clock.now + duration)
        pod.next_renew = self.clock.now + self.params.slot_ttl / 3
        if step.action is Action.VALIDATE and step.version is not None:
            self.observed.validations[step.version] += 1
        self._sample_loading()
        return min(duration, self.params.slot_ttl / 3)

    def _finish(self, pod: SimPod, step: FleetStep) -> None:
        version = step.version
        assert version is not None
        coordinator = pod.coordinator
        coordinator.observe()
        if step.action is Action.VALIDATE:
            ok = self.bad_at.get(version) != "validation"
            coordinator.record_verdict(version, ok, "golden data" if ok else "golden data mismatch")
        elif step.action is Action.BAKE:
            ok = self.bad_at.get(version) != "canary"
            coordinator.finish_canary(ok, "live traffic" if ok else "error ratio 0.2 > 0.01")
        else:
            pod.serving = version
            pod.served.add(version)
        self._note_phase(pod)

    def _renew(self, pod: SimPod) -> None:
        if self.clock.now >= pod.next_renew and pod.coordinator.view.mine is not None:
            pod.coordinator.renew_slot()
            pod.next_renew = self.clock.now + self.params.slot_ttl / 3

    def _entry(self, pod: SimPod) -> LedgerEntry:
        phase = pod.task.step.action.value if pod.task else "idle"
        view = pod.coordinator.view
        revision = view.release.revision if view.release else 0
        return LedgerEntry(pod.name, pod.serving, revision, phase, None, pod.coordinator.clock.time())

    def _schedule(self, index: int, delay: float) -> None:
        heapq.heappush(self._queue, (self.clock.now + max(0.01, delay), index))

    def _sample_loading(self) -> None:
        loads = (Action.SWITCH, Action.VALIDATE, Action.ROLL_BACK)
        now = self.clock.now
        loading = sum(1 for p in self.pods if p.task and p.task.step.action in loads and now < p.task.ends)
        self.observed.max_loading = max(self.observed.max_loading, loading)
        self.observed.loading_samples.append((self.clock.now, loading))

    def _note_phase(self, pod: SimPod) -> None:
        release = self.release()
        if release is not None and (release.revision, release.phase.value) != self._last_phase:
            self._last_phase = (release.revision, release.phase.value)
            self.observed.phases.append((self.clock.now, release.target, release.phase.value))
