"""Swaps nobody feels, measured: ``python -m benchmarks.fleet --drain [--pods 3] [--releases 3]``.

N pods (agent + tfs-devserver each, testkit.fleet.Pod) on one file:// bucket behind HAProxy, which balances
gRPC per request and checks every agent's /readyz (testkit/haproxy.py); one load generator sends ~100
Predict/s through HAProxy. R releases of half_plus_two carrying ``--weight-mb`` of variables are rolled one
after another, in four runs:

- **off**: ``fleet.drain`` off, the loading pod stays in traffic (the control: it must show requests
  answered by loading pods, or the measurement could not fail);
- **on**: ``fleet.drain: {enabled: true, wait: 5s, min_ready: 1}``;
- **on, unload-first**: drain on and ``serving.memory_limit`` set so that one version fits the agent's
  estimate (size on disk × ``serving.memory_factor``) and two do not: drained pods swap old-out/new-in;
- **cpu**: no release; a separate tfs-devserver outside the traffic loads the same model R times while the
  pods serve, first sharing both cores with everything, then pinned to core 1 with every other process
  (servers, agents, HAProxy, the load generator, this process) on core 0. The first says how much a load
  on the machine costs the serving pods although no request reaches the loading server — what a perfect
  drain leaves on shared cores; the second whether a core of its own removes that.

Definitions. Which pod answered each request and when comes from HAProxy's request log; each server's load
windows from its own log (``Approving load`` … ``Successfully loaded``, the model or its shadow). A request
is *answered by a loading pod* when its [start, end] overlaps a load window of the pod that answered it.
The *rollout window* of a release runs from the first load of that version anywhere (shadow included) to
the last one's end; *steady* is every request outside all rollout windows (the first 2 s of load excepted).
Latency is the client's (the load generator's, through HAProxy). *Peak memory* is each server's VmHWM
from /proc. Timings on this 2-core machine are shared with other work: noisy, compare within a run.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import numpy as np

from agent.adapters.tfserving.client import GrpcServingControl
from agent.adapters.tfserving.wait import wait_for_versions
from agent.core.domain import ServedModel
from agent.pipeline.volume import volume_usage
from agent.service.demo.serverlog import load_spans
from agent.service.publish import publish
from testkit.fleet import Pod, wait_for
from testkit.haproxy import (
    HAProxy,
    ReadyzWatch,
    Span,
    answered_while_loading,
    in_front_of,
)
from testkit.harness import Samples, percentiles, write_json
from testkit.savedmodels import build_half_plus_two
from testkit.servers import start_server
from testkit.stack import MODEL, Load

RATE = 100.0
WAIT = "5s"
FLEET = {
    "name": "bench",
    "max_unavailable": 1,
    "canary": 1,
    "canary_bake": "2s",
    "slot_ttl": "6s",
    "heartbeat": "1s",
}
GATES = {"max_error_ratio": 0.05, "max_p99_ratio": 1000.0, "min_requests": 10}
FACTOR = 1.35  # serving.memory_factor's default (agent/infra/config.py)
STEADY_S = 8.0  # load before the first release and after the last: the steady baseline
WARM_S = 2.0  # the load generator's first seconds (connections opening) count nowhere
MIB = 2**20
GOALS = {"failed": 0, "answered_by_loading_pod": 0, "rollout_p99_over_steady_p99": 1.2}


# ---- the runs ----


def run_all(pods: int, releases: int, weight_mb: float) -> dict[str, Any]:
    """Every run in a temporary directory (removed afterwards: ~1 GiB of versions and logs)."""
    with tempfile.TemporaryDirectory(prefix="tfs-agent-drain-bench-") as tmp:
        return _runs(Path(tmp), pods, releases, weight_mb)


def _runs(work: Path, pods: int, releases: int, weight_mb: float) -> dict[str, Any]:
    builds = work / "builds"
    for version in range(1, releases + 2):
        build_half_plus_two(builds, version, weight_mb=weight_mb)
    disk = volume_usage([builds / "1"])
    # One version fits the estimate with room to spare, two do not.
    limit = f"{int(disk * FACTOR * 1.5 / MIB)}Mi"
    runs = {
        "off": run_release(work / "off", builds, pods, releases, drain=False),
        "on": run_release(work / "on", builds, pods, releases, drain=True),
        "on_unload_first": run_release(work / "mem", builds, pods, releases, drain=True, memory_limit=limit),
    }
    cpu = run_cpu_share(work / "cpu", builds, pods, loads=max(releases, 5), weight_mb=weight_mb)
    return {
        "pods": pods,
        "releases": releases,
        "rate_per_s": RATE,
        "weight_mb": weight_mb,
        "version_on_disk_mib": round(disk / MIB, 1),
        "memory_limit": limit,
        "drain": {"enabled": True, "wait": WAIT, "min_ready": 1},
        "runs": runs,
        "cpu_share": cpu,
        "goals": GOALS,
    }


def _fleet(work: Path, builds: Path, count: int, fleet: dict[str, Any], **serving: Any) -> list[Pod]:
    bucket = f"file://{work}/bucket/{MODEL}"
    Path(bucket.removeprefix("file://")).mkdir(parents=True)
    publish(builds / "1", bucket, 1, progress=False, model=MODEL)
    made = []
    for i in range(count):
        pod = Pod(work / f"pod-{i}", f"pod-{i}", bucket, fleet, policy={"live_gates": GATES})
        pod.config["serving"].update(serving)
        made.append(pod)
    return made


def _proxy(stack: ExitStack, work: Path, pods: list[Pod]) -> HAProxy:
    return stack.enter_context(in_front_of(work / "haproxy", {pod.pod: pod for pod in pods}))


def _start(stack: ExitStack, pods: list[Pod]) -> None:
    for pod in pods:
        stack.callback(pod.close)
        pod.start()
    _on(pods, 1)


def _on(pods: list[Pod], version: int, timeout: float = 300) -> None:
    wait_for(
        f"every pod serving {version}",
        lambda: all((m := p.model()).get("serving") == version and m.get("pending") is None for p in pods),
        timeout,
    )


def run_release(
    work: Path, builds: Path, count: int, releases: int, *, drain: bool, memory_limit: str | None = None
) -> dict[str, Any]:
    fleet = {**FLEET, "drain": {"enabled": drain, "wait": WAIT, "min_ready": 1}}
    serving = {"memory_limit": memory_limit} if memory_limit else {}
    with ExitStack() as stack:
        pods = _fleet(work, builds, count, fleet, **serving)
        _start(stack, pods)
        proxy = _proxy(stack, work, pods)
        rss = {p.pod: _status_kib(_server_pid(p), "VmRSS") for p in pods}
        watch = ReadyzWatch(proxy.backends)
        watch.start()
        since = time.time()
        load = Load(work / "load.json", proxy.address, RATE, "stable")
        time.sleep(STEADY_S)  # a benchmark collecting its steady baseline, not a test waiting on a condition
        for version in range(2, releases + 2):
            publish(builds / str(version), pods[0].bucket, version, progress=False, model=MODEL)
            _on(pods, version)
        time.sleep(STEADY_S)
        result = load.stop()
        not_ready = watch.stop()
        peaks = {p.pod: _status_kib(_server_pid(p), "VmHWM") for p in pods}
        spans = {p.pod: [s for s in p.load_spans() if s[0] >= since] for p in pods}
        requests = [r for r in proxy.requests() if r.path.endswith("/Predict")]
    windows = _rollout_windows(spans.values(), range(2, releases + 2))
    samples = Samples.of(result)
    loading = answered_while_loading(requests, spans, MODEL)
    return {
        "drain": drain,
        "memory_limit": memory_limit,
        "sent": result["sent"],
        "logged_by_haproxy": len(requests),
        "failed": result["failed"],
        "errors": result["errors"],
        "answered_by_loading_pod": len(loading),
        "answered_by_loading_pod_swap": sum(1 for _, s in loading if s[2] == MODEL),
        "answered_by_loading_pod_shadow": sum(1 for _, s in loading if s[2] != MODEL),
        "requests_in_rollout_windows": int(np.count_nonzero(samples.inside(windows))),
        **_latency(samples, windows, since + WARM_S),
        # requests (answered by any pod) while some pod loads: comparable with the cpu runs' load windows
        "while_loading": _latency(
            samples, [(a, b) for pod in spans.values() for a, b, _, _ in pod], since + WARM_S
        ),
        "rollout_windows_s": [round(b - a, 2) for a, b in windows],
        "loads_per_pod": {pod: len(s) for pod, s in spans.items()},
        "readyz_reasons": sorted({why for _, _, reasons in not_ready for why in reasons.values()}),
        "pods_seen_not_ready": sorted({pod for _, pod, _ in not_ready}),
        "rss_steady_mib": {pod: round(kib / 1024, 1) for pod, kib in rss.items()},
        "peak_rss_mib": {pod: round(kib / 1024, 1) for pod, kib in peaks.items()},
    }


def run_cpu_share(work: Path, builds: Path, count: int, loads: int, weight_mb: float) -> dict[str, Any]:
    """Loads on a server outside the traffic while the pods serve: sharing both cores, then on its own."""
    versions = work / "loader" / MODEL
    for version in range(1, 2 * loads + 1):  # fresh versions for each phase (the same model, same size)
        build_half_plus_two(versions, version, weight_mb=weight_mb)
    with ExitStack() as stack:
        pods = _fleet(work, builds, count, {**FLEET, "drain": {"enabled": False}})
        _start(stack, pods)
        proxy = _proxy(stack, work, pods)
        loader = start_server(work / "loader", model_config="model_config_list {}\n", rest=False)
        stack.callback(loader.stop)
        client = GrpcServingControl(loader.grpc_address, loader.workdir / "models.config")
        others = [_server_pid(p) for p in pods] + [_agent_pid(p) for p in pods]
        assert proxy.process is not None
        others += [proxy.process.pid, os.getpid()]
        phases = {}
        for phase, numbers in (("shared", range(1, loads + 1)), ("pinned", range(loads + 1, 2 * loads + 1))):
            load = Load(work / f"load-{phase}.json", proxy.address, RATE, "stable")
            if phase == "pinned":
                _pin(loader.process.pid, {1})
                for pid in [*others, load.proc.pid]:
                    _pin(pid, {0})
            start = time.time()
            time.sleep(STEADY_S)  # the steady baseline of this phase
            for version in numbers:
                client.apply({MODEL: ServedModel(MODEL, str(versions), (version,))})
                wait_for_versions(client, MODEL, [version], timeout=120)
                time.sleep(2.0)  # room between loads: the steady samples between them
            result = load.stop()
            spans = [s for s in load_spans(loader.stderr_text()) if s[0] >= start]
            windows = [(a, b) for a, b, _, _ in spans]
            phases[phase] = {
                "sent": result["sent"],
                "failed": result["failed"],
                **_latency(Samples.of(result), windows, start + WARM_S),
                "load_windows_s": [round(b - a, 2) for a, b in windows],
            }
        for pid in [loader.process.pid, *others]:
            _pin(pid, set(range(os.cpu_count() or 1)))
    return phases


# ---- figures ----


def _rollout_windows(per_pod: Iterable[list[Span]], versions: Iterable[int]) -> list[tuple[float, float]]:
    spans = [s for pod in per_pod for s in pod]
    windows = []
    for version in versions:
        mine = [s for s in spans if s[3] == version]
        if mine:
            windows.append((min(s[0] for s in mine), max(s[1] for s in mine)))
    return windows


def _latency(samples: Samples, windows: list[tuple[float, float]], after: float) -> dict[str, Any]:
    ok = (samples.version >= 0) & (samples.start >= after)
    inside = samples.inside(windows)
    steady_p50, steady_p99 = percentiles(samples.latency[ok & ~inside])
    window_p50, window_p99 = percentiles(samples.latency[ok & inside])
    return {
        "steady_p50_ms": round(steady_p50, 2),
        "steady_p99_ms": round(steady_p99, 2),
        "window_p50_ms": round(window_p50, 2),
        "window_p99_ms": round(window_p99, 2),
        "rollout_p99_over_steady_p99": round(window_p99 / steady_p99, 2),
        "rollout_p50_over_steady_p50": round(window_p50 / steady_p50, 2),
    }


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    """Each goal against the drain-on run; what the CPU sharing explains of the ratio left."""
    on, cpu = result["runs"]["on"], result["cpu_share"]
    ratio = on["rollout_p99_over_steady_p99"]
    explains = {}
    for q in ("p50", "p99"):
        key = f"rollout_{q}_over_steady_{q}"
        loading, shared = on["while_loading"][key], cpu["shared"][key]
        # (shared - 1) / (loading - 1): the part of drain-on's excess while a pod loads that a load on shared
        # cores causes with no request reaching the loading server
        explains[q] = round((shared - 1) / (loading - 1), 2) if loading > 1 else None
    return {
        "failed_0": on["failed"] == 0 and result["runs"]["on_unload_first"]["failed"] == 0,
        "answered_by_loading_pod_0": on["answered_by_loading_pod"] == 0
        and result["runs"]["on_unload_first"]["answered_by_loading_pod"] == 0,
        "p99_ratio_at_most_1_2": ratio <= GOALS["rollout_p99_over_steady_p99"],
        "p99_ratio_excess_over_goal": round(ratio - GOALS["rollout_p99_over_steady_p99"], 2),
        "cpu_sharing_explains": explains,
        "measurement_can_fail": result["runs"]["off"]["answered_by_loading_pod"] > 0,
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['pods']} pods behind HAProxy, {result['releases']} releases of {result['weight_mb']:g} MiB"
        f" ({result['version_on_disk_mib']} MiB on disk) under {result['rate_per_s']:g} Predict/s",
    ]
    for name, r in result["runs"].items():
        lines += [
            f"  {name}: sent {r['sent']} (HAProxy logged {r['logged_by_haproxy']}), failed {r['failed']};"
            f" answered by a loading pod {r['answered_by_loading_pod']} (swap"
            f" {r['answered_by_loading_pod_swap']}, shadow {r['answered_by_loading_pod_shadow']}) of"
            f" {r['requests_in_rollout_windows']} in rollout windows",
            f"    p99 rollout {r['window_p99_ms']} ms / steady {r['steady_p99_ms']} ms ="
            f" {r['rollout_p99_over_steady_p99']} (p50 {r['window_p50_ms']} / {r['steady_p50_ms']} ms ="
            f" {r['rollout_p50_over_steady_p50']}); windows {r['rollout_windows_s']} s",
            f"    peak RSS MiB {r['peak_rss_mib']} (steady {r['rss_steady_mib']});"
            f" loads {r['loads_per_pod']}",
            f"    while any pod loads: p99 {r['while_loading']['rollout_p99_over_steady_p99']},"
            f" p50 {r['while_loading']['rollout_p50_over_steady_p50']} × steady",
            f"    /readyz reasons: {r['readyz_reasons']}",
        ]
    for phase, c in result["cpu_share"].items():
        lines.append(
            f"  cpu {phase}: a server outside the traffic loading: p99 in its loads {c['window_p99_ms']} ms /"
            f" steady {c['steady_p99_ms']} ms = {c['rollout_p99_over_steady_p99']} (p50"
            f" {c['rollout_p50_over_steady_p50']}; failed {c['failed']})"
        )
    lines.append(f"  verdict: {result['verdict']}")
    return "\n".join(lines)


# ---- processes ----


def _server_pid(pod: Pod) -> int:
    assert pod.server is not None
    return int(pod.server.process.pid)


def _agent_pid(pod: Pod) -> int:
    assert pod.agent is not None
    assert pod.agent.proc is not None
    return int(pod.agent.proc.pid)


def _status_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure in KiB (VmRSS now, VmHWM the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def _pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` onto ``cpus`` (sched_setaffinity acts per thread; new threads inherit)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return
    for tid in tids:
        with suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(int(tid), cpus)


def main(pods: int, releases: int, weight_mb: float, out: Path) -> int:
    """Run, print, write ``out``; exit 0 only when the drain-on runs meet the goals."""
    started = time.monotonic()
    result = run_all(pods, releases, weight_mb)
    result["verdict"] = verdict(result)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    print(report(result))
    print(f"wrote {write_json(out, result)} ({result['wall_seconds']} s of wall time)")
    v = result["verdict"]
    return 0 if v["failed_0"] and v["answered_by_loading_pod_0"] and v["p99_ratio_at_most_1_2"] else 1
