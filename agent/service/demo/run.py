"""The demo's script: v1 goes live, a good v2 replaces it under load, a bad v3 is rejected while v2 serves."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from agent.infra.config import AgentSettings, settings_from_mapping
from agent.infra.poll import poll_until
from agent.service.app import Agent
from agent.service.demo.ports import free_port

MODEL = "half_plus_two"
GOLDEN = {"instances": [1.0, 2.0, 5.0], "expected": [2.5, 3.0, 4.5], "tolerance": {"atol": 1e-4}}
# (version, a, b): v2 is a retrained model with the same answers; v3 gives wrong answers (y = x/2 + 3).
VERSIONS = ((1, 0.5, 2.0), (2, 0.5, 2.0), (3, 0.5, 3.0))
# The fleet demo's v3 answers correctly but refuses the input 5 that the load sends (golden data lacks it).
FLEET_VERSIONS = ((1, 0.5, 2.0), (2, 0.5, 2.0), (3, 0.5, "2.0@5.0"))


class Timeline:
    """Readable progress: seconds since start and what happened."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll ``check`` every 0.1 s until it holds; TimeoutError naming ``what`` after ``timeout`` seconds."""
    poll_until(
        check,
        timeout=timeout,
        interval=0.1,
        failure=lambda _: TimeoutError(f"gave up waiting {timeout:.0f}s for {what}"),
    )


def _settings(work: Path, grpc_port: int) -> AgentSettings:
    return settings_from_mapping(
        {
            "serving": {
                "address": f"127.0.0.1:{grpc_port}",
                "model_config_file": str(work / "models/models.config"),
                "load_timeout": "60s",
                "rpc_timeout": "10s",
            },
            "state_dir": str(work / "state"),
            "http": {"host": "127.0.0.1", "port": 0},
            "models": [
                {
                    "name": MODEL,
                    "source": f"file://{work}/bucket/{MODEL}",
                    "local_path": str(work / "models" / MODEL),
                    "schedule": {"interval": "1s"},
                    "golden": str(work / "golden.json"),
                    "policy": {"bake_time": "2s"},
                    "labels": ["stable"],
                }
            ],
        },
        "demo",
    )


def _model(agent: Agent) -> dict[str, Any]:
    models: dict[str, dict[str, Any]] = agent.status()["models"]
    return models[MODEL]


def run_demo(keep: bool = False, rate: float = 100.0, replicas: int = 1) -> int:
    """Run the demo; 0 only if v2 was promoted with zero failed requests and v3 rejected while v2 served
    (with replicas > 1: v2 rolled pod by pod and v3 stopped at the canary, agent.service.demo.fleet)."""
    work = Path(tempfile.mkdtemp(prefix="tfs-agent-demo-"))
    tl = Timeline()
    tl.say(f"working in {work}")
    try:
        with ExitStack() as stack:
            if replicas > 1:
                from agent.service.demo.fleet import run_fleet_demo

                builds = _build_models(work, tl, FLEET_VERSIONS)
                return run_fleet_demo(work, tl, stack, builds, replicas)
            return _scenario(work, tl, stack, rate)
    finally:
        if keep:
            tl.say(f"kept {work} (logs: agent.log, devserver.log)")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _scenario(work: Path, tl: Timeline, stack: ExitStack, rate: float) -> int:
    from agent.service.cli import build_agent
    from agent.service.publish import publish
    from agent.service.runner import run_forever

    builds = _build_models(work, tl)
    (work / "golden.json").write_text(json.dumps(GOLDEN))
    bucket = f"file://{work}/bucket/{MODEL}"
    publish(builds[1], bucket, 1, progress=False, model=MODEL)
    tl.say("published v1 to the bucket (files first, manifest last)")

    grpc_port = free_port()
    _log_to(work / "agent.log")
    agent = build_agent(_settings(work, grpc_port))
    stop = threading.Event()
    runner = threading.Thread(target=run_forever, args=(agent, stop), daemon=True)
    runner.start()
    stack.callback(runner.join, 30)
    stack.callback(stop.set)
    wait_until("the agent's start-up config", agent.healthy, 30)
    tl.say("agent wrote the start-up config (empty: nothing validated yet); starting tfs-devserver")
    stack.enter_context(_DevServer(work, grpc_port))

    wait_until("v1 serving", lambda: _model(agent).get("serving") == 1, 90)
    tl.say("v1 validated on golden data in a shadow model and promoted")
    load = stack.enter_context(_Load(work, grpc_port, rate))
    tl.say(f"load generator: {rate:.0f} Predict/s on label 'stable' in another process")

    publish(builds[2], bucket, 2, progress=False, model=MODEL)
    tl.say("published v2 (good)")
    wait_until("v2 serving", lambda: _model(agent).get("serving") == 2, 60)
    tl.say("v2 promoted: loaded beside v1, label moved, v1 drained and unloaded, bake passed")

    publish(builds[3], bucket, 3, progress=False, model=MODEL)
    tl.say("published v3 (gives wrong answers)")
    wait_until("v3 rejected", lambda: "3" in _model(agent).get("quarantined", {}), 60)
    tl.say(f"v3 rejected: {_model(agent)['quarantined']['3']}")
    return _verdict(tl, agent, load())


def _build_models(
    work: Path, tl: Timeline, versions: tuple[tuple[int, float, float | str], ...] = VERSIONS
) -> dict[int, Path]:
    args: list[str] = []
    out: dict[int, Path] = {}
    for version, a, b in versions:
        out[version] = work / "build" / str(version)
        args += [str(out[version]), str(a), str(b)]
    subprocess.run(
        [sys.executable, "-m", "agent.service.demo.models", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tl.say(f"built {len(versions)} SavedModels with TensorFlow")
    return out


def _log_to(path: Path) -> None:
    from agent.infra.logs import TextFormatter

    handler = logging.FileHandler(path)
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


class _DevServer:
    def __init__(self, work: Path, port: int) -> None:
        self.cmd = [
            sys.executable,
            "-m",
            "tfs_devserver",
            f"--port={port}",
            f"--model_config_file={work}/models/models.config",
            "--file_system_poll_wait_seconds=1",
            "--max_num_load_retries=0",
        ]
        self.log = work / "devserver.log"

    def __enter__(self) -> subprocess.Popen[bytes]:
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen(self.cmd, stdout=fh, stderr=subprocess.STDOUT)
        return self.proc

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class _Load:
    def __init__(self, work: Path, port: int, rate: float) -> None:
        self.out = work / "load.json"
        self.cmd = [
            sys.executable,
            "-m",
            "agent.service.demo.load",
            f"127.0.0.1:{port}",
            MODEL,
            str(rate),
            str(self.out),
            "stable",
        ]

    def __enter__(self) -> Callable[[], dict[str, Any]]:
        self.proc = subprocess.Popen(self.cmd)
        return self.finish

    def finish(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


def _verdict(tl: Timeline, agent: Agent, load: dict[str, Any]) -> int:
    model = _model(agent)
    versions = sorted({v for _, _, v in load["samples"] if v >= 0})
    tl.say(f"requests: {load['sent']} sent, {load['failed']} failed; answered by versions {versions}")
    for error, count in load["errors"].items():
        tl.say(f"  {count}× {error}")
    ok = model.get("serving") == 2 and "3" in model.get("quarantined", {}) and load["failed"] == 0
    ok = ok and load["sent"] > 0
    tl.say(
        "PASS: v2 promoted with zero failed requests; v3 rejected while v2 kept serving"
        if ok
        else f"FAIL: serving={model.get('serving')} quarantined={model.get('quarantined')}"
    )
    return 0 if ok else 1
