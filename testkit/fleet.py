"""N pods on loopback: N (agent + tfs-devserver) process pairs against one bucket, with a ``fleet:`` block.

What a test asserts about loads comes from the servers' own logs (``Approving load`` … ``Successfully
loaded``), never from the agents' reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.service.demo.serverlog import load_spans, most_at_once
from agent.service.publish import publish
from testkit.poll import poll_until
from testkit.ports import free_port
from testkit.savedmodels import build_half_plus_two
from testkit.stack import MODEL, Stack

# The load generator sends x = [1, 2, 5]; the golden data here lacks 5, so a model failing on 5 passes it.
GOLDEN = {"instances": [1.0, 3.0], "expected": [2.5, 3.5], "tolerance": {"atol": 1e-4}}


class Pod(Stack):
    """One replica: its agent in the fleet, its TF Serving with a REST port for the Prometheus endpoint."""

    def __init__(self, tmp: Path, pod: str, bucket: str, fleet: dict[str, Any], **kw: Any) -> None:
        tmp.mkdir(parents=True)
        super().__init__(tmp, source=bucket, **kw)
        self.pod = pod
        (tmp / "golden.json").write_text(json.dumps(GOLDEN))
        self.rest_port = free_port()
        self.config["fleet"] = {"id": pod, **fleet}
        url = f"http://127.0.0.1:{self.rest_port}/monitoring/prometheus/metrics"
        self.config["serving"]["monitoring_url"] = url

    def extra_server_flags(self) -> list[str]:
        monitoring = self.tmp / "monitoring.config"
        monitoring.write_text('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n')
        return [f"--rest_api_port={self.rest_port}", f"--monitoring_config_file={monitoring}"]

    def server_logs(self) -> str:
        return "".join((d / "stderr.txt").read_text() for d in sorted(self.tmp.glob("tfs-*")))

    def load_spans(self) -> list[tuple[float, float, str, int]]:
        """(start, end, model, version) of every load this pod's servers logged (unfinished: end = inf)."""
        return load_spans(self.server_logs())


def wait_for(what: str, check: Any, timeout: float) -> Any:
    """``check``'s first truthy value, polled every 0.1 s for up to ``timeout`` seconds."""
    return poll_until(check, timeout=timeout, interval=0.1, what=what)


def most_loading(pods: list[Pod], since: float, version: int) -> int:
    """The most pods loading ``version`` (the model or its shadow) at one instant, from the servers' logs."""
    return most_at_once(
        (p.load_spans() for p in pods), lambda s: s[3] == version and s[0] >= since and s[2].startswith(MODEL)
    )


def shadow_loads(pods: list[Pod], version: int) -> int:
    """How many times any server loaded ``version`` as the shadow model (validations across the fleet)."""
    return sum(1 for p in pods for _, _, name, v in p.load_spans() if v == version and name != MODEL)


def publish_version(tmp: Path, bucket: str, version: int, build: Any = None, **kw: Any) -> None:
    src = (build or build_half_plus_two)(tmp / "build", version, **kw)
    publish(src, bucket, version, progress=False, model=MODEL)
