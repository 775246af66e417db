"""fleet.drain with real processes: two (agent + tfs-devserver) pairs on one file:// bucket. The pod holding
the slot answers /readyz 503 with the reason while its server loads the new version, and 200 again for its
bake (released right after the labels move, before the bake watch); with too few other pods ready it swaps
in place and says why (docs/fleet.md, ADR 25).

Loads are read from the servers' own logs; readiness from each agent's /status, sampled by a watcher
thread for the whole release (an observation, not a wait)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.pipeline.volume import volume_usage
from testkit.fleet import FLEET as ROLLING
from testkit.fleet import Pod, publish_version, wait_for
from testkit.stack import MODEL

pytestmark = pytest.mark.slow

# Every pod rolls with its smoke bake (no canary), recorded as the promotion's bake step.
FLEET = {**ROLLING, "canary": 0}
SWAP = "draining for the swap to v2"


@dataclass(frozen=True)
class Sample:
    at: float
    ready: bool
    reason: str
    step: str | None
    """The promotion's recorded step (load, switch, bake) or None."""


class Watcher:
    """Samples every pod's /status (readiness, its reason, the promotion step) until stopped."""

    def __init__(self, pods: list[Pod]) -> None:
        self.pods = pods
        self.samples: dict[str, list[Sample]] = {p.pod: [] for p in pods}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pod in self.pods:
                model = pod.model()
                if model:
                    pending = model.get("pending") or {}
                    self.samples[pod.pod].append(
                        Sample(time.time(), model["ready"], model["ready_reason"], pending.get("step"))
                    )
            self._stop.wait(0.02)  # the sampling period of an observer thread, not a wait for a condition


def _fleet_on_v1(made: list[Pod], tmp: Path, drain: dict[str, Any]) -> str:
    bucket = f"file://{tmp}/bucket/m"
    Path(bucket.removeprefix("file://")).mkdir(parents=True)
    publish_version(tmp, bucket, 1)
    for name in ("pod-a", "pod-b"):
        pod = Pod(tmp / name, name, bucket, {**FLEET, "drain": drain}, policy={"bake_time": "2s"})
        made.append(pod)
        pod.start()
    _on_version(made, 1)
    return bucket


def _on_version(pods: list[Pod], version: int) -> None:
    wait_for(
        f"every pod serving {version}",
        lambda: all(p.model().get("serving") == version and p.model().get("pending") is None for p in pods),
        180,
    )


def _load_of(pod: Pod, version: int) -> tuple[float, float]:
    """When ``pod``'s server loaded ``version`` of the model itself (not the shadow)."""
    spans = [(start, end) for start, end, name, v in pod.load_spans() if name == MODEL and v == version]
    assert len(spans) == 1, spans
    return spans[0]


def test_the_switching_pod_is_out_of_traffic_for_its_load_and_back_for_its_bake(
    pods: list[Pod], tmp_path: Path
) -> None:
    """Each pod in turn: /readyz 503 "draining for the swap to v2" over its server's whole load of v2, then
    200 again while its bake runs; the other pod stays ready meanwhile."""
    bucket = _fleet_on_v1(pods, tmp_path, {"enabled": True, "wait": "1s", "min_ready": 1})
    with Watcher(pods) as watcher:
        publish_version(tmp_path, bucket, 2, b=2.0)
        _on_version(pods, 2)
    for pod in pods:
        other = next(p for p in pods if p is not pod)
        start, end = _load_of(pod, 2)
        mine = watcher.samples[pod.pod]
        during = [s for s in mine if start <= s.at <= end]
        assert {(s.ready, s.reason) for s in during} <= {(False, SWAP)}, pod.pod
        assert any(s.reason == SWAP for s in mine), pod.pod  # the drain showed (its quiet wait is ≥ 0.5 s)
        # The step is recorded as bake once the labels moved, just before readiness is released: after the
        # drain's last 503 the pod stays ready for the rest of it (a release after the bake: no 200 at all).
        baking = [s for s in mine if s.step == "bake"]
        back = next((i for i, s in enumerate(baking) if s.ready), None)
        assert back is not None, f"{pod.pod} baked out of traffic: {baking}"
        assert {s.reason for s in baking[:back]} <= {SWAP}, pod.pod
        assert all(s.ready for s in baking[back:]), f"{pod.pod} left the traffic during its bake"
        theirs = [s for s in watcher.samples[other.pod] if start <= s.at <= end]
        assert all(s.ready for s in theirs), f"{other.pod} was out of traffic while {pod.pod} loaded"
        assert pod.model()["last_drain"] == SWAP


@pytest.mark.extended
def test_a_pod_that_would_leave_too_few_ready_swaps_in_place(pods: list[Pod], tmp_path: Path) -> None:
    """min_ready 2 with one other pod: no pod ever drains; both swap in place, and /status says why."""
    bucket = _fleet_on_v1(pods, tmp_path, {"enabled": True, "wait": "1s", "min_ready": 2})
    with Watcher(pods) as watcher:
        publish_version(tmp_path, bucket, 2, b=2.0)
        _on_version(pods, 2)
    for pod in pods:
        assert not any(s.reason.startswith("draining") for s in watcher.samples[pod.pod]), pod.pod
        assert pod.model()["last_drain"] == (
            "only 1 other pod(s) ready (pod-a), fleet.drain.min_ready is 2: swapping in place"
            if pod.pod == "pod-b"
            else "only 1 other pod(s) ready (pod-b), fleet.drain.min_ready is 2: swapping in place"
        )


@pytest.mark.extended
def test_unload_first_when_only_one_version_fits(pods: list[Pod], tmp_path: Path) -> None:
    """serving.memory_limit holds one version: each drained pod swaps old-out/new-in (the promotion's step
    load_alone, seen while /readyz says draining) and the validator checks the shadow with v1 unloaded; both
    pods end on v2 with its label, and the real server accepted the drop and re-add of the model."""
    bucket = _fleet_on_v1(pods, tmp_path, {"enabled": True, "wait": "1s", "min_ready": 1})
    one = volume_usage([pods[0].volume / MODEL / "1"])
    for pod in pods:
        pod.config["serving"].update(memory_limit=int(one * 1.5), memory_factor=1.0)
        pod.restart_agent(kill=False)
    _on_version(pods, 1)
    with Watcher(pods) as watcher:
        publish_version(tmp_path, bucket, 2, b=2.0)
        _on_version(pods, 2)
    for pod in pods:
        alone = [s for s in watcher.samples[pod.pod] if s.step == "load_alone"]
        assert alone, f"{pod.pod} never swapped unload-first"
        assert {(s.ready, s.reason) for s in alone} == {(False, SWAP)}, pod.pod
        assert pod.model()["serving"] == 2
        assert {v for v, (state, _, _) in pod.tfs_state().items() if state == "AVAILABLE"} == {2}
