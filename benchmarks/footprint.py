"""What the agent costs in every pod: ``python -m benchmarks.footprint`` (flags: ``--help``).

The agent runs as a real process (``tfs-agent run``) with three models on file:// buckets, polling every 5 s,
beside a running tfs-devserver. Read straight from /proc (no psutil): its RSS (``VmRSS``, sampled every
second) and CPU (``utime + stime`` of ``/proc/<pid>/stat``) while idle for ``--seconds``; then its RSS sampled
every 20 ms while it stages a ``--big-mb`` version (staging streams 1 MiB chunks to disk, so this should not
grow with the model), and its lifetime peak (``VmHWM``). Whether TensorFlow's runtime is mapped into the
agent (``/proc/<pid>/maps`` naming ``_pywrap_tensorflow`` or ``libtensorflow``), and what importing the TF
Serving protobufs costs the ordinary way (``import tensorflow_serving.apis.predict_pb2``, which runs all of
TensorFlow) against the agent's way (ADR 3), each in a fresh subprocess, best of 3. Last, per bucket scheme
(file, gs, s3, az): the RSS of an agent built for one model on it (``cli.build_agent`` in a fresh process,
tests/sdk_probe.py) and which cloud SDKs it loaded: each SDK is imported only by a model that uses its
scheme, so a gs-only agent does not grow by the S3 and Azure support. ``--schemes-only`` prints just that.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.service.publish import publish
from testkit.harness import counter, write_json
from testkit.poll import poll_until
from testkit.savedmodels import build_half_plus_two
from testkit.sdk_probe import SOURCES, probe
from testkit.stack import MODEL, Stack

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = (MODEL, "m2", "m3")
TF_LIBRARIES = ("_pywrap_tensorflow", "libtensorflow")
# VmHWM, not ru_maxrss: the latter keeps the high-water mark of the forked parent (this process, which has
# imported TensorFlow to build models) across exec.
_IMPORT = (
    "import pathlib, time; t = time.perf_counter(); import {module}; s = time.perf_counter() - t; "
    "print(s, next(l.split()[1] for l in pathlib.Path('/proc/self/status').read_text().splitlines() "
    "if l.startswith('VmHWM')))"
)


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (fields 14 and 15 of /proc/<pid>/stat)."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")


def tensorflow_mapped(pid: int) -> list[str]:
    """The TensorFlow runtime libraries mapped into the process (none expected for the agent)."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return sorted({line.split()[-1] for line in maps if any(lib in line for lib in TF_LIBRARIES)})


def import_cost(module: str, repeat: int = 3) -> dict[str, float]:
    """Best-of-``repeat`` seconds and peak RSS (MiB) of importing ``module`` in a fresh interpreter."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT.format(module=module)], capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append((float(out[-2]), int(out[-1]) / 1024))
    return {"seconds": min(r[0] for r in runs), "max_rss_mib": min(r[1] for r in runs)}


def three_models(tmp: Path, interval: str) -> Stack:
    """A stack whose agent manages m, m2 and m3, each from its own file:// bucket."""
    stack = Stack(tmp, schedule={"interval": interval})
    first = stack.config["models"][0]
    for name in MODELS[1:]:
        stack.config["models"].append(
            {
                **first,
                "name": name,
                "source": f"file://{tmp}/bucket/{name}",
                "local_path": str(stack.volume / name),
            }
        )
    return stack


def publish_to(stack: Stack, name: str, version: int, weight_mb: float = 0) -> None:
    src = build_half_plus_two(stack.tmp / "build" / name, version, weight_mb=weight_mb)
    publish(src, f"file://{stack.tmp}/bucket/{name}", version, progress=False, model=name)


def idle(pid: int, seconds: float, stack: Stack) -> dict[str, Any]:
    """RSS every second and CPU over ``seconds`` of an agent with nothing to do but poll."""
    polls = counter(stack, "tfs_agent_polls", outcome="ok")
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    rss = []
    while (elapsed := time.monotonic() - t0) < seconds:
        rss.append(memory_kb(pid)["VmRSS"])
        time.sleep(min(1.0, seconds - elapsed))  # sampling period
    cpu = cpu_seconds(pid) - cpu0
    wall = time.monotonic() - t0
    polled = counter(stack, "tfs_agent_polls", outcome="ok") - polls
    return {
        "seconds": wall,
        "rss_mib_mean": sum(rss) / len(rss) / 1024,
        "rss_mib_max": max(rss) / 1024,
        "cpu_percent_of_one_core": 100 * cpu / wall,
        "cpu_seconds": cpu,
        "passes": polled,
    }


def staging_peak(pid: int, stack: Stack, big_mb: float) -> dict[str, Any]:
    """RSS every 20 ms from publishing a ``big_mb`` version until it serves; the peak while it was staged."""
    publish_to(stack, MODEL, 2, weight_mb=big_mb)
    before = memory_kb(pid)["VmRSS"]
    staged_at, peak_staging, peak_all = None, before, before
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        rss = memory_kb(pid)["VmRSS"]
        peak_all = max(peak_all, rss)
        if staged_at is None:
            peak_staging = max(peak_staging, rss)
            if (stack.volume / MODEL / "2").is_dir():
                staged_at = time.monotonic()
        elif stack.model().get("serving") == 2 and stack.model().get("pending") is None:
            break
        time.sleep(0.02)  # sampling period
    size = sum(p.stat().st_size for p in (stack.volume / MODEL / "2").rglob("*") if p.is_file())
    return {
        "version_mib": size / 2**20,
        "rss_mib_before": before / 1024,
        "rss_mib_peak_while_staging": peak_staging / 1024,
        "rss_mib_peak_until_serving": peak_all / 1024,
        "vm_hwm_mib": memory_kb(pid)["VmHWM"] / 1024,
    }


def measure(tmp: Path, *, seconds: float, big_mb: float, interval: str = "5s") -> dict[str, Any]:
    stack = three_models(tmp, interval)
    try:
        stack.start()
        for name in MODELS:
            publish_to(stack, name, 1)
        assert stack.agent is not None
        assert stack.agent.proc is not None
        agent = stack.agent
        poll_until(
            lambda: all(
                agent.model(n).get("serving") == 1 and agent.model(n).get("pending") is None for n in MODELS
            ),
            timeout=120,
            interval=0.1,
            what="three models serving",
        )
        pid = agent.proc.pid  # type: ignore[union-attr]
        result = {"idle": idle(pid, seconds, stack), "tensorflow_in_agent": tensorflow_mapped(pid)}
        result["staging"] = staging_peak(pid, stack, big_mb)
        return result
    finally:
        stack.close()


def per_scheme(repeat: int = 3) -> dict[str, dict[str, Any]]:
    """RSS (best of ``repeat`` fresh processes) and loaded SDKs of an agent for one model on each scheme."""
    found: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="footprint-schemes-") as tmp:
        for scheme in SOURCES:
            runs = [probe(scheme, Path(tmp)) for _ in range(repeat)]
            found[scheme] = {
                "rss_mib": min(r["rss_mib"] for r in runs),
                "hwm_mib": min(r["hwm_mib"] for r in runs),
                "sdks": runs[0]["sdks"],
            }
    base = found["file"]["rss_mib"]
    for scheme, r in found.items():
        sdks = ", ".join(r["sdks"]) or "none"
        print(
            f"agent for one {scheme}:// model: RSS {r['rss_mib']:.1f} MiB ({r['rss_mib'] - base:+.1f} vs "
            f"file://), VmHWM {r['hwm_mib']:.1f} MiB; cloud SDKs loaded: {sdks}"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle measurement length")
    parser.add_argument("--big-mb", type=float, default=256.0, help="MiB of variables in the staged version")
    parser.add_argument("--out", type=Path, default=RESULTS / "footprint.json")
    parser.add_argument("--schemes-only", action="store_true", help="only the per-scheme RSS and SDKs")
    args = parser.parse_args(argv)
    schemes = per_scheme()
    if args.schemes_only:
        return 0
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        result = measure(Path(tmp), seconds=args.seconds, big_mb=args.big_mb)
    result["schemes"] = schemes
    result["imports"] = {
        m: import_cost(m) for m in ("agent.adapters.tfserving.client", "tensorflow_serving.apis.predict_pb2")
    }
    i, s = result["idle"], result["staging"]
    cpu = i["cpu_percent_of_one_core"]
    print(f"idle, 3 models, 5 s polls, {i['seconds']:.0f} s ({i['passes']:.0f} passes):", end=" ")
    print(f"RSS {i['rss_mib_mean']:.1f} MiB (max {i['rss_mib_max']:.1f}), CPU {cpu:.2f} % of one core")
    print(f"staging a {s['version_mib']:.0f} MiB version: RSS {s['rss_mib_before']:.1f} MiB before,", end=" ")
    print(f"peak {s['rss_mib_peak_while_staging']:.1f} MiB while staging,", end=" ")
    print(f"{s['rss_mib_peak_until_serving']:.1f} MiB until it served; VmHWM {s['vm_hwm_mib']:.1f} MiB")
    shown = ", ".join(result["tensorflow_in_agent"]) or "no"
    print(f"TensorFlow runtime mapped into the agent: {shown}")
    for module, cost in result["imports"].items():
        print(
            f"import {module}: {cost['seconds']:.2f} s, {cost['max_rss_mib']:.0f} MiB peak RSS "
            "(fresh process, best of 3)"
        )
    print(f"wrote {write_json(args.out, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
