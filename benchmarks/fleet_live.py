"""The fleet with real processes: ``python -m benchmarks.fleet --pods 4 --releases 10``.

N pods (agent + tfs-devserver each, the demo's ``Pod``) on one file:// bucket, a load generator per pod.
Releases v2..v(R+1) are published one after another; every fourth one passes the golden data but refuses the
input the load sends, and must stop at the canary. Figures come from the servers' own logs and from the
load generators, never from the agents' reports.

Failed requests are split by time: each one (its start, pod and gRPC code, from the load generator) either
lies inside an aborted canary's bake window — on the pod that canaried the bad version, from its server's
load of that version to the end of its unload (the rollback), both from that server's own log — or outside.
The goal is 0 outside.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from agent.service.demo.fleet import CANARY, FLEET, Pod, Recorder
from agent.service.demo.run import MODEL, Timeline, _build_models, wait_until
from agent.service.demo.serverlog import load_spans, most_at_once
from agent.service.publish import publish
from testkit.harness import aborted_bakes, failures_in_windows


def _bad(version: int) -> bool:
    return version % 4 == 1 and version > 1


def run_live(pods: int, releases: int, work: Path | None = None) -> dict[str, Any]:
    work = work or Path(tempfile.mkdtemp(prefix="tfs-agent-fleet-bench-"))
    tl, started = Timeline(), time.time()
    versions = tuple((v, 0.5, "2.0@5.0" if _bad(v) else 2.0) for v in range(1, releases + 2))
    with ExitStack() as stack:
        builds = _build_models(work, tl, versions)
        (work / "golden.json").write_text(
            json.dumps({"instances": [1.0, 3.0], "expected": [2.5, 3.5], "tolerance": {"atol": 1e-4}})
        )
        bucket = f"file://{work}/bucket/{MODEL}"
        publish(builds[1], bucket, 1, progress=False, model=MODEL)
        fleet = [Pod(work, f"pod-{i}", bucket) for i in range(pods)]
        for pod in fleet:
            stack.callback(pod.stop)
            pod.start()
        recorder = Recorder(fleet, bucket, tl.t0)
        recorder.start()
        stack.callback(recorder.halt.set)
        wait_until("v1 everywhere", lambda: _on(fleet, 1), 300)
        for pod in fleet:
            pod.load(20.0)
        rollout = _release_all(fleet, bucket, builds, releases, tl)
        recorder.halt.set()
        recorder.join(5)
        for pod in fleet:
            pod.stop()
        return _figures(fleet, recorder, rollout, releases, started)


def _release_all(
    fleet: list[Pod], bucket: str, builds: dict[int, Path], releases: int, tl: Timeline
) -> dict[int, float]:
    """Publish each version in turn; seconds from its manifest to the whole fleet on it (or stopped)."""
    good, rollout = 1, {}
    for version in range(2, releases + 2):
        published = time.monotonic()
        publish(builds[version], bucket, version, progress=False, model=MODEL)
        if _bad(version):
            wait_until(f"v{version} stopped", lambda v=version, g=good: _stopped(fleet, v, g), 300)
            what = "stopped at the canary"
        else:
            wait_until(f"v{version} everywhere", lambda v=version: _on(fleet, v), 300)
            good, what = version, "on every pod"
        rollout[version] = round(time.monotonic() - published, 1)
        tl.say(f"v{version} {what}: {rollout[version]} s")
    return rollout


def _stopped(fleet: list[Pod], bad: int, good: int) -> bool:
    rejected = any(str(bad) in p.model().get("quarantined", {}) for p in fleet)
    return rejected and _on(fleet, good)


def _on(fleet: list[Pod], version: int) -> bool:
    return all((m := p.model()).get("serving") == version and m.get("pending") is None for p in fleet)


def _figures(
    fleet: list[Pod], recorder: Recorder, rollout: dict[int, float], releases: int, started: float
) -> dict[str, Any]:
    logs = [(p.dir / "devserver.log").read_text() for p in fleet]
    spans = [load_spans(text) for text in logs]
    first = min((s[0] for server in spans for s in server if s[3] == 2), default=0.0)
    validations: dict[int, int] = {}
    for server in spans:
        for _, _, name, version in server:
            if name != MODEL:
                validations[version] = validations.get(version, 0) + 1
    bad = [v for v in rollout if _bad(v)]
    served_bad = sorted({n for _, n, v, _ in recorder.samples if v in bad})
    loads = {p.name: p.load_result() for p in fleet}
    windows = {p.name: aborted_bakes(text, MODEL, bad) for p, text in zip(fleet, logs, strict=True)}
    failures = failures_in_windows(loads, windows, started)
    return {
        "pods": len(fleet),
        "releases": releases,
        "max_unavailable": FLEET["max_unavailable"],
        "canary": CANARY,
        "canary_bake": FLEET["canary_bake"],
        "failed_requests": {n: r["failed"] for n, r in loads.items()},
        "failed_requests_outside_aborted_bakes": sum(1 for f in failures if not f["in_aborted_bake"]),
        "aborted_bake_windows_s": {
            n: [(round(a - started, 2), round(b - started, 2), v) for a, b, v in w]
            for n, w in windows.items()
            if w
        },
        "failed_request_records": failures,
        "sent_requests": sum(r["sent"] for r in loads.values()),
        "most_pods_loading_at_once": most_at_once(spans, lambda s: s[0] >= first and s[3] >= 2),
        "validations_per_version": {str(v): validations.get(v, 0) for v in rollout},
        "manifest_to_whole_fleet_s": {str(v): t for v, t in rollout.items() if not _bad(v)},
        "aborted_versions_stopped_s": {str(v): t for v, t in rollout.items() if _bad(v)},
        "divergence_windows_s": _divergence(recorder.samples, [p.name for p in fleet]),
        "pods_that_served_an_aborted_version": served_bad,
    }


def _divergence(samples: list[tuple[float, str, int | None, bool]], names: list[str]) -> list[float]:
    """Lengths of the stretches during which the pods served different versions (sampled every 0.25 s)."""
    by_time: dict[float, dict[str, int | None]] = {}
    for t, name, version, _ in samples:
        by_time.setdefault(round(t, 1), {})[name] = version
    windows: list[float] = []
    start: float | None = None
    for t in sorted(by_time):
        row = by_time[t]
        split = len(row) == len(names) and len(set(row.values())) > 1
        if split and start is None:
            start = t
        elif not split and start is not None:
            windows.append(round(t - start, 1))
            start = None
    return windows
