"""Debian's ``prometheus`` as a real process for tests: its config, its command line, and instant queries.

Shared by the scrape test (Prometheus scraping the agent) and the live-evidence tests (the agent querying
Prometheus); ``.ci/run`` installs the package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.poll import poll_until
from testkit.ports import free_port


def prometheus_binary() -> str:
    """The ``prometheus`` executable; the test fails (not skips) without it: CI installs it."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is required: apt-get install prometheus (.ci/run installs it)")
    return binary


def prometheus_config(work: Path, jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path] = ()) -> Path:
    """A config scraping each job's ``host:port`` targets every second (rules evaluated every second)."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(r) for r in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]} for job, targets in jobs.items()
        ],
    }
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def prometheus_argv(work: Path, config: Path, port: int) -> list[str]:
    """The command line: loopback only, its TSDB under ``work`` (kept across a restart on the same port)."""
    return [
        prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={work / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]


def query(base_url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query through Prometheus's HTTP API: the result vector."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def is_ready(base_url: str) -> bool:
    """True once Prometheus answers /-/ready with 200."""
    try:
        with urllib.request.urlopen(f"{base_url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class PrometheusProcess:
    """One Prometheus on a fixed loopback port; ``stop()`` and ``start()`` again keep port and data."""

    def __init__(self, work: Path, jobs: Mapping[str, Sequence[str]]) -> None:
        self.work, self.port = work, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = prometheus_config(work, jobs)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> PrometheusProcess:
        with (self.work / "prometheus.log").open("ab") as log:
            argv = prometheus_argv(self.work, self.config, self.port)
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        poll_until(lambda: is_ready(self.url), timeout=timeout, interval=0.2, what="Prometheus ready")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def value(self, promql: str) -> float | None:
        """The single series' value, or None when the query has no data (or Prometheus cannot answer)."""
        try:
            result = query(self.url, promql)
        except (OSError, urllib.error.URLError):
            return None
        return float(result[0]["value"][1]) if result else None
