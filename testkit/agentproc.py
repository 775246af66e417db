"""Run the agent as a real process (``tfs-agent run``, or any ``tfs-agent`` command) for end-to-end tests, and
read what it shows: its HTTP endpoint, its metrics and its log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from testkit.poll import poll_until

_LISTENING = re.compile(r"http endpoint listening on [^\s;]*:(\d+);")


def tfs_agent(
    *args: str, token: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``tfs-agent ARGS`` as a process; ``token`` becomes $TFS_AGENT_ADMIN_TOKEN (none is set otherwise)."""
    environ = {k: v for k, v in os.environ.items() if k != "TFS_AGENT_ADMIN_TOKEN"} | (env or {})
    if token is not None:
        environ["TFS_AGENT_ADMIN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class AgentProcess:
    """``tfs-agent run --config`` in a subprocess with its log captured."""

    def __init__(self, workdir: Path, config: dict[str, Any], *, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        # Port 0: the agent binds a free port itself and logs it, so no other process can take it first.
        config = {**config, "http": {**config.get("http", {}), "host": "127.0.0.1", "port": 0}}
        self.config = config
        n = len(list(workdir.glob("agent-*.yaml")))
        self.config_path = workdir / f"agent-{n}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"agent-{n}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.url = ""
        self._log_from = 0

    def start(self) -> AgentProcess:
        """Start the process; return once its HTTP endpoint is up and /healthz answers."""
        self._log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        self.port = poll_until(self._reported_port, timeout=30, interval=0.05, what="the agent's HTTP port")
        self.url = f"http://127.0.0.1:{self.port}"
        poll_until(self.healthy, timeout=30, interval=0.1, what="the agent's /healthz")
        return self

    def _reported_port(self) -> int | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the agent exited with {self.proc.returncode}:\n{self.log()}")
        found = _LISTENING.findall(self.log()[self._log_from :])
        return int(found[-1]) if found else None

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                body = resp.read()
                return resp.status, json.loads(body) if path != "/metrics" and body[:1] in b"{[" else body
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the agent exited with {self.proc.returncode}:\n{self.log()}")
        return self.get("/healthz")[0] == 200

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        return body if code == 200 else {}

    def model(self, name: str) -> dict[str, Any]:
        return dict(self.status().get("models", {}).get(name, {}))

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of sample ``name`` (e.g. ``tfs_agent_polls_total``) summed over the series whose labels
        include ``labels``; None when /metrics has no such series."""
        code, body = self.get("/metrics")
        assert code == 200, f"/metrics answered {code}"
        values = [
            sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        ]
        return sum(values) if values else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def json_log(self) -> list[dict[str, Any]]:
        """Every line of a ``log_format: json`` agent's log, parsed (a non-JSON line fails the test)."""
        return [json.loads(line) for line in self.log().splitlines() if line.strip()]

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        """``tfs-agent ARGS --url <this agent>``: the admin and status commands against this process."""
        return tfs_agent(*args, "--url", self.url, token=token)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)
