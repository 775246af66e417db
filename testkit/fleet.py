"""N pods on loopback: N (agent + tfs-devserver) process pairs against one bucket, with a ``fleet:`` block.

What a test asserts about loads comes from the servers' own logs (``Approving load`` … ``Successfully
loaded``), never from the agents' reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.adapters.sources import open_record_store
from agent.core.errors import AgentError, FleetRecordError
from agent.core.fleet_records import (
    LEDGER_PREFIX,
    RELEASE_NAME,
    SLOTS_PREFIX,
    LedgerEntry,
    Release,
    Slot,
    decode,
)
from agent.fleet.coordinator import fleet_uri
from agent.service.demo.serverlog import load_spans, most_at_once
from agent.service.publish import publish
from testkit.agentproc import AgentProcess
from testkit.poll import poll_until
from testkit.ports import free_port
from testkit.savedmodels import build_half_plus_two
from testkit.stack import MODEL, Stack

# The load generator sends x = [1, 2, 5]; the golden data here lacks 5, so a model failing on 5 passes it.
GOLDEN = {"instances": [1.0, 3.0], "expected": [2.5, 3.5], "tolerance": {"atol": 1e-4}}
FLEET = {
    "name": "prod",
    "max_unavailable": 1,
    "canary": 1,
    "canary_bake": "3s",
    "slot_ttl": "6s",
    "heartbeat": "1s",
}
GATES = {"max_error_ratio": 0.05, "max_p99_ratio": 1000.0, "min_requests": 10}


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

    def served(self, version: int) -> bool:
        """This pod's server ever loaded ``version`` as the model itself (not as the shadow)."""
        return any(v == version and name == MODEL for _, _, name, v in self.load_spans())

    def agent_logs(self) -> str:
        return "".join(f.read_text() for f in sorted(self.tmp.glob("agent-*.log")))

    def revive(self) -> None:
        """A new agent process after this one was killed (as the pod's container would be restarted)."""
        self.agent = AgentProcess(self.tmp, self.config, env=self.agent_env).start()


def start_pods(
    made: list[Pod], tmp: Path, bucket: str, names: list[str], fleet: dict[str, Any] = FLEET, **kw: Any
) -> list[Pod]:
    """Start one pod per name (live gates on) and add it to ``made`` (which the caller closes)."""
    for name in names:
        pod = Pod(tmp / name, name, bucket, fleet, policy={"live_gates": GATES}, **kw)
        made.append(pod)
        pod.start()
    return made


def fleet_on_v1(made: list[Pod], tmp: Path, names: list[str], **kw: Any) -> str:
    """A file:// bucket with v1, the pods started on it, every pod serving v1; the bucket's URI."""
    bucket = f"file://{tmp}/bucket/m"
    Path(bucket.removeprefix("file://")).mkdir(parents=True)
    publish_version(tmp, bucket, 1)
    start_pods(made, tmp, bucket, names, **kw)
    on_version(made, 1)
    return bucket


def on_version(pods: list[Pod], version: int, timeout: float = 180) -> None:
    wait_for(
        f"every pod serving {version}",
        lambda: all(p.model().get("serving") == version and p.model().get("pending") is None for p in pods),
        timeout,
    )


@dataclass(frozen=True)
class Records:
    """The fleet's records as the bucket holds them now (read with the agent's own record store)."""

    release: Release | None
    slots: tuple[Slot, ...]
    ledger: dict[str, LedgerEntry]

    def holder(self, phase: str, target: int) -> str | None:
        """Who holds a slot while the release targeting ``target`` is in ``phase``."""
        if self.release is None or self.release.phase != phase or self.release.target != target:
            return None
        return next((s.holder for s in self.slots if s.holder), None)


def read_records(bucket: str, fleet: str = "prod") -> Records | None:
    """The fleet records of the model at ``bucket`` (gs:// needs STORAGE_EMULATOR_HOST in this process);
    None while one is being written or does not parse yet."""
    store = open_record_store(fleet_uri(bucket, fleet))
    try:
        return Records(
            _one(store, RELEASE_NAME, Release),
            tuple(r for i in store.list(SLOTS_PREFIX) if (r := _one(store, i.name, Slot)) is not None),
            {e.pod: e for i in store.list(LEDGER_PREFIX) if (e := _one(store, i.name, LedgerEntry))},
        )
    except (AgentError, FleetRecordError, OSError):
        return None


def _one(store: Any, name: str, kind: Any) -> Any:
    record = store.read(name)
    return decode(kind, record.data, origin=name) if record is not None else None


def records_until(bucket: str, what: str, check: Any, timeout: float = 180) -> Records:
    """The first reading of the records for which ``check(records)`` is true."""
    return wait_for(what, lambda: (r := read_records(bucket)) is not None and check(r) and r, timeout)  # type: ignore[no-any-return]


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
