"""``tfs-agent demo --replicas N``: N pods (agent + tfs-devserver process pairs) on loopback, one bucket.

v1 goes live everywhere, a good v2 rolls pod by pod (one slot), then v3 — it passes the golden data but
fails on the inputs live traffic sends — is stopped at the canary and rolled back there. A timeline is
printed and ``fleet.png`` (which pod serves which version over time, slot holdings shaded) is written.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from agent.fleet import open_coordinator
from agent.infra.clock import SystemClock
from agent.infra.config_fleet import FleetSettings
from agent.service.demo.ports import free_port
from agent.service.demo.run import MODEL, Timeline, wait_until

# The load sends x = [1, 2, 5]; the golden data lacks 5, and v3 refuses any batch holding 5.
GOLDEN = {"instances": [1.0, 3.0], "expected": [2.5, 3.5], "tolerance": {"atol": 1e-4}}
CANARY = 1
FLEET = {"name": "demo", "max_unavailable": 1, "canary": CANARY, "canary_bake": "4s", "slot_ttl": "6s"}
GATES = {"max_error_ratio": 0.05, "max_p99_ratio": 1000.0, "min_requests": 10}


class Pod:
    """One replica: the agent (``tfs-agent run``) and its tfs-devserver, each its own process."""

    def __init__(self, work: Path, name: str, bucket: str) -> None:
        self.name, self.dir = name, work / name
        (self.dir / "models").mkdir(parents=True)
        self.grpc, self.rest, self.http = free_port(), free_port(), free_port()
        config = {
            "serving": {
                "address": f"127.0.0.1:{self.grpc}",
                "model_config_file": str(self.dir / "models/models.config"),
                "load_timeout": "60s",
                "monitoring_url": f"http://127.0.0.1:{self.rest}/monitoring/prometheus/metrics",
            },
            "state_dir": str(self.dir / "state"),
            "http": {"host": "127.0.0.1", "port": self.http},
            "fleet": {**FLEET, "id": name, "heartbeat": "1s"},
            "models": [
                {
                    "name": MODEL,
                    "source": bucket,
                    "local_path": str(self.dir / "models" / MODEL),
                    "schedule": {"interval": "1s"},
                    "golden": str(work / "golden.json"),
                    "policy": {"bake_time": "1s", "live_gates": GATES},
                }
            ],
        }
        (self.dir / "config.yaml").write_text(yaml.safe_dump(config))
        (self.dir / "monitoring.config").write_text(
            'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        agent = [sys.executable, "-m", "agent", "run", "--config", str(self.dir / "config.yaml")]
        self._spawn(agent, "agent.log")
        wait_until(f"{self.name}'s start-up config", (self.dir / "models/models.config").exists, 60)
        server = [
            sys.executable,
            "-m",
            "tfs_devserver",
            f"--port={self.grpc}",
            f"--rest_api_port={self.rest}",
            f"--monitoring_config_file={self.dir / 'monitoring.config'}",
            f"--model_config_file={self.dir / 'models/models.config'}",
            "--file_system_poll_wait_seconds=1",
            "--max_num_load_retries=0",
        ]
        self._spawn(server, "devserver.log")

    def load(self, rate: float) -> None:
        out = self.dir / "load.json"
        cmd = [sys.executable, "-m", "agent.service.demo.load", f"127.0.0.1:{self.grpc}", MODEL, str(rate)]
        self._spawn([*cmd, str(out)], "load.log")

    def _spawn(self, cmd: list[str], log: str) -> None:
        with (self.dir / log).open("wb") as fh:
            self.procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT))

    def model(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/status", timeout=5) as r:
                status: dict[str, Any] = json.loads(r.read())
        except OSError:
            return {}
        return dict(status["models"][MODEL])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def load_result(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.dir / "load.json").read_text())
        return result


class Recorder(threading.Thread):
    """Samples every pod's serving version and the fleet's slot holders every 0.25 s."""

    def __init__(self, pods: list[Pod], bucket: str, t0: float) -> None:
        super().__init__(daemon=True)
        self.pods, self.t0 = pods, t0
        self.coordinator = open_coordinator(bucket, FleetSettings(name="demo", id="observer"), SystemClock())
        self.samples: list[tuple[float, str, int | None, bool]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.25):
            try:
                holders = {s.holder for s in self.coordinator.observe().slots if s.holder and not s.expired}
            except Exception:
                holders = set()
            now = time.monotonic() - self.t0
            for pod in self.pods:
                self.samples.append((now, pod.name, pod.model().get("serving"), pod.name in holders))


def run_fleet_demo(work: Path, tl: Timeline, stack: ExitStack, builds: dict[int, Path], replicas: int) -> int:
    from agent.service.publish import publish

    (work / "golden.json").write_text(json.dumps(GOLDEN))
    bucket = f"file://{work}/bucket/{MODEL}"
    publish(builds[1], bucket, 1, progress=False, model=MODEL)
    pods = [Pod(work, f"pod-{chr(ord('a') + i)}", bucket) for i in range(replicas)]
    for pod in pods:
        stack.callback(pod.stop)
        pod.start()
    tl.say(f"{replicas} pods started (agent + tfs-devserver each); v1 published")
    recorder = Recorder(pods, bucket, tl.t0)
    recorder.start()
    stack.callback(recorder.halt.set)
    everyone = _all_on(pods)
    wait_until("every pod serving v1", lambda: everyone(1), 180)
    tl.say("v1 serves on every pod (validated once, then every pod loaded it)")
    for pod in pods:
        pod.load(20.0)
    publish(builds[2], bucket, 2, progress=False, model=MODEL)
    tl.say("published v2 (good): one pod validates it, the canary bakes on live traffic, then one by one")
    _watch(pods, tl, lambda: everyone(2), 240)
    publish(builds[3], bucket, 3, progress=False, model=MODEL)
    tl.say("published v3: passes the golden data, refuses the input live traffic sends")
    _watch(pods, tl, lambda: any("3" in p.model().get("quarantined", {}) for p in pods) and everyone(2), 240)
    recorder.halt.set()
    recorder.join(5)
    for pod in pods:
        pod.stop()
    return _verdict(pods, recorder, tl, work)


def _all_on(pods: list[Pod]) -> Any:
    def check(version: int) -> bool:
        return all((m := p.model()).get("serving") == version and m.get("pending") is None for p in pods)

    return check


def _watch(pods: list[Pod], tl: Timeline, done: Any, timeout: float) -> None:
    """Print each pod's change of serving version until ``done``."""
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while not done():
        for pod in pods:
            serving = pod.model().get("serving")
            if seen.get(pod.name, serving) != serving:
                tl.say(f"{pod.name}: serving v{serving} (was v{seen[pod.name]})")
            seen[pod.name] = serving
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s")
        time.sleep(0.25)
    for pod in pods:
        if seen.get(pod.name) != (serving := pod.model().get("serving")):
            tl.say(f"{pod.name}: serving v{serving}")


def _verdict(pods: list[Pod], recorder: Recorder, tl: Timeline, work: Path) -> int:
    served3 = sorted({name for _, name, v, _ in recorder.samples if v == 3})
    failed = {p.name: p.load_result()["failed"] for p in pods}
    tl.say(f"pods that ever served v3: {served3 or 'none'}; failed requests per pod: {failed}")
    png = _plot(recorder.samples, [p.name for p in pods], work / "fleet.png")
    tl.say(f"timeline chart: {png}" if png else "matplotlib missing: no chart")
    ok = len(served3) <= CANARY and all(p.model().get("serving") in (2, None) for p in pods)
    tl.say("PASS: v2 rolled pod by pod; v3 stopped at the canary" if ok else "FAIL")
    return 0 if ok else 1


def _plot(samples: list[tuple[float, str, int | None, bool]], names: list[str], out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(10, 1 + len(names)))
    colors = {1: "tab:blue", 2: "tab:green", 3: "tab:red"}
    for row, name in enumerate(names):
        mine = [(t, v, held) for t, n, v, held in samples if n == name]
        for (t, v, held), (t2, _, _) in itertools.pairwise(mine):
            if v is not None:
                ax.barh(row, t2 - t, left=t, color=colors.get(v, "grey"), height=0.5)
            if held:
                ax.axvspan(t, t2, ymin=row / len(names), ymax=(row + 1) / len(names), color="k", alpha=0.12)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("seconds (bars: serving v1 blue, v2 green, v3 red; shaded: holding a slot)")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
