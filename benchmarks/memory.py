"""How much memory a loaded version takes against its size on disk: ``python -m benchmarks.memory``.

The factor ``serving.memory_limit`` multiplies a version's size on disk by (agent/pipeline/memory.py). A real
tfs-devserver starts with an empty config; half_plus_two versions carrying ``--weight-mb`` of variables are
added one at a time with ReloadConfig (the agent's own client) until each is AVAILABLE, then removed again.
After every step the server's resident set (``VmRSS`` of /proc/<pid>/status) is read once it has settled
(two reads 0.5 s apart within 1 MiB). Printed per version: RSS growth ÷ the version directory's allocated
bytes on disk (the kubelet's way of counting, agent/pipeline/volume.py), and what unloading gave back.
"""

from __future__ import annotations

# B-numbers are TF Serving behaviours: docs/tfserving-behaviour.md
import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.adapters.tfserving.client import GrpcServingControl
from agent.adapters.tfserving.wait import wait_for_versions
from agent.core.domain import ServedModel
from agent.pipeline.volume import volume_usage
from testkit.harness import write_json
from testkit.savedmodels import build_half_plus_two
from testkit.servers import start_server

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 2**20


def rss(pid: int) -> int:
    """Bytes resident, from /proc (no psutil)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def settled_rss(pid: int, timeout: float = 30.0) -> int:
    """RSS once two reads 0.5 s apart differ by under 1 MiB (loading threads done, allocator quiet)."""
    deadline = time.monotonic() + timeout
    last = rss(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)  # a benchmark reading a process's memory, not a test waiting on a condition
        now = rss(pid)
        if abs(now - last) < MIB:
            return now
        last = now
    return last


def run(tmp: Path, *, versions: int, weight_mb: float) -> dict[str, Any]:
    base = tmp / "models" / "m"
    for version in range(1, versions + 1):
        build_half_plus_two(base, version, weight_mb=weight_mb)
    server = start_server(tmp, model_config="model_config_list {}\n", rest=False)
    try:
        client = GrpcServingControl(server.grpc_address, server.workdir / "models.config")
        pid = server.process.pid
        rows, before = [], settled_rss(pid)
        baseline = before
        for version in range(1, versions + 1):
            client.apply({"m": ServedModel("m", str(base), tuple(range(1, version + 1)))})
            wait_for_versions(client, "m", [version], timeout=120)
            after = settled_rss(pid)
            disk = volume_usage([base / str(version)])
            rows.append(
                {
                    "version": version,
                    "disk": disk,
                    "growth": after - before,
                    "factor": (after - before) / disk,
                }
            )
            before = after
        client.apply({"m": None})
        time.sleep(2)  # TF Serving unloads asynchronously (B17); the read below settles further
        freed = before - settled_rss(pid)
        return {"weight_mb": weight_mb, "baseline": baseline, "loads": rows, "freed_on_unload": freed}
    finally:
        server.stop()


def report(r: dict[str, Any]) -> str:
    lines = [f"== {r['weight_mb']:g} MiB of variables; server baseline RSS {r['baseline'] / MIB:.0f} MiB"]
    for row in r["loads"]:
        disk, growth = row["disk"] / MIB, row["growth"] / MIB
        lines.append(
            f"version {row['version']}: {disk:6.1f} MiB on disk, RSS +{growth:6.1f} MiB → {row['factor']:.2f}"
        )
    lines.append(f"unloading every version gave back {r['freed_on_unload'] / MIB:.1f} MiB")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=3, help="versions loaded one after another")
    parser.add_argument("--weight-mb", type=float, nargs="+", default=[8.0, 32.0, 64.0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = []
    for weight in args.weight_mb:
        with tempfile.TemporaryDirectory(prefix="memory-") as tmp:
            r = run(Path(tmp), versions=args.versions, weight_mb=weight)
        print(report(r), flush=True)
        results.append(r)
    write_json(args.out / "memory.json", {"runs": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
