"""A real Prometheus scrapes a real agent during a promotion and sees ``tfs_agent_serving_version`` change.

Every part is a separate process: ``tfs-agent run --config F``, TF Serving (``tfs-devserver``, or the stock
binary named by ``TFS_BINARY``) and Debian's ``prometheus`` on loopback ports, with the alert rules of
k8s/monitoring loaded. Versions go into a ``file://`` bucket with ``tfs-agent publish``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.poll import poll_until
from testkit.ports import free_port
from testkit.prometheus import prometheus_argv, prometheus_config, query

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "k8s" / "monitoring" / "rules.yaml"
MODEL = "half_plus_two"
#: ``tfs-agent`` as a child process, whether or not the console script is installed in this environment.
TFS_AGENT = [sys.executable, "-c", "from agent.service.cli import main; main()"]
#: Prometheus's lastEvaluation of a rule that has not been evaluated yet.
_NEVER = "0001-01-01T00:00:00Z"

pytestmark = pytest.mark.slow


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class Proc:
    """A child process whose output goes to a log file; stopped on exit, log shown when a wait fails."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.log = name, log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def tail(self) -> str:
        return f"--- {self.name} ({self.log}) ---\n" + self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@dataclass
class Stack:
    """The running processes and where to reach them."""

    work: Path
    agent_url: str
    prometheus_url: str
    procs: list[Proc]
    exits: ExitStack
    grpc_port: int

    def start(self, name: str, argv: list[str]) -> None:
        """Start a child process, stopped when the fixture ends."""
        self.procs.append(Proc(name, argv, self.work / f"{name}.log"))
        self.exits.callback(self.procs[-1].stop)

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        """Poll ``check`` until true; on timeout (or a dead process) fail with every process's log."""

        def done() -> bool:
            dead = [p.name for p in self.procs if p.popen.poll() is not None]
            if dead:
                raise AssertionError(f"{', '.join(dead)} exited")
            return _quietly(check)

        try:
            poll_until(done, timeout=timeout, interval=0.2, what=what)
        except AssertionError as err:
            pytest.fail(f"waiting for {what}: {err}\n" + "\n".join(p.tail() for p in self.procs))

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query through Prometheus's HTTP API."""
        return query(self.prometheus_url, promql)

    def serving_in_prometheus(self) -> float | None:
        result = self.query(f'tfs_agent_serving_version{{job="tfs-agent", model="{MODEL}"}}')
        return float(result[0]["value"][1]) if result else None

    def serving_in_agent(self) -> int | None:
        serving: int | None = _get_json(f"{self.agent_url}/status")["models"][MODEL].get("serving")
        return serving

    def publish(self, version: int) -> None:
        bucket = f"file://{self.work}/bucket/{MODEL}"
        argv = [*TFS_AGENT, "publish", str(self.work / "build" / str(version)), bucket]
        result = subprocess.run(
            [*argv, "--version", str(version), "--no-progress"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr


def _quietly(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (OSError, urllib.error.URLError, KeyError, ValueError):
        return False


def _serving_command(grpc_port: int, config_file: Path) -> list[str]:
    """TF Serving's flags as in k8s/base; the stock binary when TFS_BINARY is set, else tfs-devserver."""
    flags = [
        f"--port={grpc_port}",
        f"--model_config_file={config_file}",
        "--file_system_poll_wait_seconds=1",
        "--max_num_load_retries=1",
        "--load_retry_interval_micros=2000000",
    ]
    binary = os.environ.get("TFS_BINARY")
    return [binary, *flags] if binary else [sys.executable, "-m", "tfs_devserver", *flags]


def _agent_config(work: Path, grpc_port: int, http_port: int) -> Path:
    config = {
        "serving": {
            "address": f"127.0.0.1:{grpc_port}",
            "model_config_file": str(work / "models" / "models.config"),
            "load_timeout": "90s",
        },
        "state_dir": str(work / "models" / ".tfs-agent"),
        "http": {"host": "127.0.0.1", "port": http_port},
        "models": [
            {
                "name": MODEL,
                "source": f"file://{work}/bucket/{MODEL}",
                "local_path": str(work / "models" / MODEL),
                "schedule": {"interval": "1s"},
                "policy": {"bake_time": "1s"},
            }
        ],
    }
    path = work / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _build_models(work: Path) -> None:
    """v1 and v2 of y = 0.5x + 2, built by TensorFlow in a child process (the agent never imports it)."""
    args = [str(work / "build" / "1"), "0.5", "2.0", str(work / "build" / "2"), "0.5", "2.0"]
    subprocess.run(
        [sys.executable, "-m", "agent.service.demo.models", *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The agent and Prometheus scraping it, against an empty file:// bucket; no TF Serving yet."""
    (tmp_path / "bucket" / MODEL).mkdir(parents=True)
    grpc_port, http_port, prom_port = free_port(), free_port(), free_port()
    config = _agent_config(tmp_path, grpc_port, http_port)
    with ExitStack() as exits:
        running = Stack(
            tmp_path, f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{prom_port}", [], exits, grpc_port
        )
        running.start("agent", [*TFS_AGENT, "run", "--config", str(config)])
        running.wait("the agent's /healthz", lambda: _get_json_ok(f"{running.agent_url}/healthz"), 60)
        scrape = prometheus_config(tmp_path, {"tfs-agent": [f"127.0.0.1:{http_port}"]}, [RULES])
        running.start("prometheus", prometheus_argv(tmp_path, scrape, prom_port))
        running.wait("Prometheus ready", lambda: _get_json_ok(f"{running.prometheus_url}/-/ready"), 60)
        yield running


@pytest.fixture
def serving(stack: Stack) -> Stack:
    """TF Serving, started after the agent wrote its initial config (as in the pod), and two SavedModels."""
    if not os.environ.get("TFS_BINARY") and importlib.util.find_spec("tfs_devserver.main") is None:
        pytest.skip("needs tfs-devserver (pip install ./devserver) or TFS_BINARY")
    _build_models(stack.work)
    stack.start("serving", _serving_command(stack.grpc_port, stack.work / "models" / "models.config"))
    return stack


def _get_json_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bool(response.status == 200)


def test_prometheus_sees_the_serving_version_change(serving: Stack) -> None:
    """Through Prometheus's HTTP API, tfs_agent_serving_version goes 1 → 2 as v2 is promoted."""
    stack = serving
    stack.publish(1)
    stack.wait("v1 serving", lambda: stack.serving_in_agent() == 1, 120)
    stack.wait("Prometheus to scrape version 1", lambda: stack.serving_in_prometheus() == 1.0, 30)

    stack.publish(2)
    stack.wait("v2 serving", lambda: stack.serving_in_agent() == 2, 120)
    stack.wait("Prometheus to scrape version 2", lambda: stack.serving_in_prometheus() == 2.0, 30)

    history = stack.query(f'max_over_time(tfs_agent_serving_version{{model="{MODEL}"}}[10m])')
    assert float(history[0]["value"][1]) == 2.0
    assert stack.query('up{job="tfs-agent"}')[0]["value"][1] == "1"
    # The promotion is counted after its bake, a moment after the version switched.
    promoted = 'tfs_agent_candidates_total{outcome="promoted"}'
    stack.wait("Prometheus to count 2 promotions", lambda: stack.query(promoted)[0]["value"][1] == "2", 30)


def test_alert_rules_evaluate_cleanly_on_real_metrics(stack: Stack) -> None:
    """Every alert rule evaluates without error against the agent's real series, and none fires."""
    stack.wait(
        "a successful poll", lambda: bool(stack.query("tfs_agent_last_poll_success_timestamp_seconds")), 60
    )

    def evaluated() -> bool:
        groups = _get_json(f"{stack.prometheus_url}/api/v1/rules")["data"]["groups"]
        return all(rule["lastEvaluation"] != _NEVER for group in groups for rule in group["rules"])

    stack.wait("every rule evaluated once", evaluated, 30)
    groups = _get_json(f"{stack.prometheus_url}/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["name"] for rule in rules} >= {"TfsAgentDown", "TfsAgentModelStale", "TfsAgentRolledBack"}
    assert [(r["name"], r["lastError"]) for r in rules if r["health"] != "ok"] == []
    # Recording rules (rules.yaml's tf-serving group) have no state.
    assert [r["name"] for r in rules if r["type"] == "alerting" and r["state"] == "firing"] == []
