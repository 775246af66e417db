"""What a hot swap costs the clients: ``python -m benchmarks.swap`` (flags: ``--help``).

The agent (a real process) promotes ``--promotions`` consecutive versions of a model carrying ``--weight-mb``
of real variables, from a file:// bucket into tfs-devserver, while a load generator in another process sends
Predicts on the ``stable`` label at a fixed open-loop rate. Run twice: with the warmup the agent writes from
the golden inputs, and without it (``no-warmup``: every version ships an *empty* warmup file, so the agent
leaves it alone and TF Serving replays nothing — validation is byte-for-byte the same golden check, only the
warmup differs).

Definitions. The **swap window** runs from the agent recording ``pending.step = load`` in its state file
(the Recorder in testkit/harness.py reads each write's mtime) to TF Serving logging ``Done unloading`` for
the old version; the **validation window** from the shadow model appearing in the config file to it leaving;
**steady state** is every request outside [manifest written, old version unloaded + 0.2 s] of every
promotion. **Time to serve** runs from the version appearing complete in the bucket (its directory, manifest
inside, renamed in in one step) to the first request after which every answer comes from the new version.
**Poll wait** runs from then to the end of the agent's detecting pass (``last_poll`` recorded by that pass).
Stages per promotion are deltas of the agent's ``tfs_agent_stage_duration_seconds`` sums between two
scrapes. Raw figures: download = copying the version's files onto the volume's filesystem and fsyncing them
(as durable staging must), best of 5 after the run; load = the shadow's ``Approving load`` → ``Successfully
loaded`` in TF Serving's log (START → AVAILABLE, warmup included); validation = the agent's validate stage.
TF Serving's log lines carry microsecond stamps and read the same for the stock server.

``--validation in_place`` runs the model with ``validation: in_place``: no shadow; the validation window is
then from the version AVAILABLE beside the old one to the label move, and the swap window contains it.
**validation+swap** (the rollout window) runs from the first of the shadow appearing and the load step to
the old version unloaded, comparable both ways; **loads per version** counts TF Serving's ``Approving load``
lines per version under any name.

Goals (issue 6): failed = 0; swap p99 ÷ steady p99 ≤ 1.5 with warmup; (time to serve − poll wait) ≤ 1.3 ×
(raw download + raw load + validation). The load step waits for TF Serving's next poll of the volume (B7,
B12: ``--file_system_poll_wait_seconds=1``), so the ratio is also printed with that wait taken out.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from agent.service.publish import publish
from testkit.harness import SHADOW, Recorder, Samples, percentiles, scrape, write_json
from testkit.poll import poll_until
from testkit.savedmodels import build_half_plus_two
from testkit.stack import MODEL, Stack

RESULTS = Path(__file__).resolve().parent / "results"
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img" / "swap.png"
STAGES = ("detect", "download", "verify", "validate", "load", "promote")
FIRST_ANSWERS = 5
"""Answers per promotion counted as the new version's first: what a warmup exists to speed up."""
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def stage_sums(stack: Stack) -> dict[str, tuple[float, float]]:
    """stage → (sum of seconds, count) of the agent's stage histogram, scraped now."""
    out: dict[str, list[float]] = {}
    for name, labels, value in scrape(stack, "tfs_agent_stage_duration_seconds"):
        pair = out.setdefault(labels["stage"], [0.0, 0.0])
        if name.endswith("_sum"):
            pair[0] = value
        elif name.endswith("_count"):
            pair[1] = value
    return {stage: (total, count) for stage, (total, count) in out.items()}


def prepare_versions(tmp: Path, count: int, weight_mb: float, warmup: bool) -> Path:
    """Publish versions 1..count into a side bucket; ``release`` later moves each into the real one."""
    side = tmp / "side"
    for version in range(1, count + 1):
        src = build_half_plus_two(tmp / "build", version, weight_mb=weight_mb)
        if not warmup:
            (src / WARMUP_FILE).parent.mkdir(exist_ok=True)
            (src / WARMUP_FILE).write_bytes(b"")
        publish(src, f"file://{side}", version, progress=False, model=MODEL)
    return side


def release(side: Path, stack: Stack, version: int) -> float:
    """The version with its manifest appears in the bucket in one rename; returns when."""
    bucket = Path(stack.bucket.removeprefix("file://"))
    bucket.mkdir(parents=True, exist_ok=True)
    os.rename(side / str(version), bucket / str(version))
    return time.time()


def raw_copy_seconds(src: Path, scratch: Path, repeat: int = 5) -> float:
    """Best time to copy a version's files onto the volume's filesystem and fsync them."""
    best = float("inf")
    for i in range(repeat):
        dest = scratch / f"copy-{i}"
        os.sync()
        start = time.perf_counter()
        shutil.copytree(src, dest)
        for path in dest.rglob("*"):
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        best = min(best, time.perf_counter() - start)
        shutil.rmtree(dest)
    return best


def run_variant(
    tmp: Path,
    *,
    promotions: int,
    rate: float,
    weight_mb: float,
    warmup: bool,
    pause: float,
    validation: str = "shadow",
) -> dict[str, Any]:
    """One whole run: stack up, v1 serving, load on, ``promotions`` swaps, load off; raw measurements."""
    side = prepare_versions(tmp, promotions + 1, weight_mb, warmup)
    stack = Stack(tmp, validation=validation)
    stack.config["serving"]["load_timeout"] = "120s"
    marks: list[dict[str, Any]] = []
    try:
        stack.start()
        release(side, stack, 1)
        stack.wait_serving(1, timeout=120)
        with Recorder(stack, every=0.002) as rec:
            load = stack.load(rate=rate)
            time.sleep(pause + 2)  # a steady stretch before the first swap (the load runs open loop)
            for version in range(2, promotions + 2):
                before = stage_sums(stack)
                published = release(side, stack, version)
                stack.wait_serving(version, timeout=120)
                poll_until(
                    partial(unloaded, stack, version - 1),
                    timeout=30,
                    interval=0.1,
                    what=f"v{version - 1} unloaded",
                )
                marks.append(
                    {"version": version, "published": published, "stages": _delta(before, stage_sums(stack))}
                )
                time.sleep(pause)  # steady state between swaps
            result = load.stop()
        scratch = tmp / "scratch"
        scratch.mkdir()
        raw_download = raw_copy_seconds(stack.volume / MODEL / str(promotions + 1), scratch)
        r = analyse(Samples.of(result), rec, server_log(stack), marks, raw_download, result)
        r["loads_per_version"] = loads_per_version(stack, range(2, promotions + 2))
        return r
    finally:
        stack.close()


_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{6}): I \S+\] "
    r"(Approving load for|Successfully loaded|Done unloading) servable version \{name: (\S+) version: (\d+)\}"
)
_EVENTS = {"Approving load for": "approved", "Successfully loaded": "loaded", "Done unloading": "unloaded"}


def server_log(stack: Stack) -> dict[tuple[str, str, int], float]:
    """(event, model, version) → wall-clock time, from TF Serving's own log lines (microsecond stamps, local
    time; the stock server writes the same lines): load approved (START), loaded (AVAILABLE), unloaded."""
    assert stack.server is not None
    out: dict[tuple[str, str, int], float] = {}
    for line in stack.server.stderr_text().splitlines():
        if match := _LOG_LINE.match(line):
            stamp, micros, what, name, version = match.groups()
            when = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(micros) / 1e6
            out.setdefault((_EVENTS[what], name, int(version)), when)
    return out


def loads_per_version(stack: Stack, versions: Iterable[int]) -> float:
    """Mean times TF Serving approved a load of each version, under any name (the shadow included)."""
    assert stack.server is not None
    counts = {v: 0 for v in versions}
    for line in stack.server.stderr_text().splitlines():
        match = _LOG_LINE.match(line)
        if match and match.group(3) == "Approving load for" and int(match.group(5)) in counts:
            counts[int(match.group(5))] += 1
    return sum(counts.values()) / max(1, len(counts))


def unloaded(stack: Stack, version: int) -> bool:
    """Whether TF Serving has logged unloading ``version`` of the model."""
    return ("unloaded", MODEL, version) in server_log(stack)


def _delta(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    out = {}
    for stage in STAGES:
        (s0, c0), (s1, c1) = before.get(stage, (0.0, 0.0)), after.get(stage, (0.0, 0.0))
        out[stage] = {"seconds": s1 - s0, "count": c1 - c0}
    return out


def promotion_timeline(
    rec: Recorder,
    log: Mapping[tuple[str, str, int], float],
    samples: Samples,
    mark: Mapping[str, Any],
    until: float,
) -> dict[str, Any]:
    """When each step of one promotion happened: the recorder (agent), the server's log, the samples."""
    version, published = int(mark["version"]), float(mark["published"])
    detected = next(
        float(v.record["last_poll"])
        for v in rec.views
        if v.at >= published and (v.record.get("last_verdict") or {}).get("version") == version
    )
    load_step = rec.first(lambda v: v.step == (version, "load"), after=published)
    loading = (log[("approved", MODEL, version)], log[("loaded", MODEL, version)])
    if ("loaded", SHADOW, version) in log:
        shadow_in = rec.first(lambda v: SHADOW in v.config, after=published)
        shadow_out = rec.first(lambda v: SHADOW not in v.config, after=shadow_in or published)
        raw_load = log[("loaded", SHADOW, version)] - log[("approved", SHADOW, version)]
    else:  # validation: in_place: validated beside the old version, from AVAILABLE to the label move
        shadow_in = loading[1]
        shadow_out = rec.first(lambda v: v.step == (version, "switch"), after=published)
        raw_load = loading[1] - loading[0]
    window = (published <= samples.start) & (samples.start < until) & (samples.version >= 0)
    others = np.nonzero(window & (samples.version != version))[0]
    ours = np.nonzero(window & (samples.version == version))[0]
    after_others = ours[ours > others.max()] if others.size else ours
    return {
        "version": version,
        "published": published,
        "detected": detected,
        "load_step": load_step,
        "old_unloaded": log[("unloaded", MODEL, version - 1)],
        "loading": loading,
        "validation_window": (shadow_in, shadow_out),
        "rollout_window": (
            min(shadow_in or published, load_step or published),
            log[("unloaded", MODEL, version - 1)],
        ),
        "raw_load_s": raw_load,
        "tfs_poll_wait_s": log[("approved", MODEL, version)] - (load_step or float("nan")),
        "served": float(samples.start[after_others[0]]) if after_others.size else float("nan"),
        "first_answers_ms": (samples.latency[ours[:FIRST_ANSWERS]] * 1000).tolist(),
        "stages": mark["stages"],
    }


def analyse(
    samples: Samples,
    rec: Recorder,
    log: Mapping[tuple[str, str, int], float],
    marks: Sequence[Mapping[str, Any]],
    raw_download: float,
    load: Mapping[str, Any],
) -> dict[str, Any]:
    """The figures of one run (see the module docstring for every definition)."""
    ends = [float(m["published"]) for m in marks[1:]] + [float(samples.start.max()) + 1]
    timeline = [promotion_timeline(rec, log, samples, m, end) for m, end in zip(marks, ends, strict=True)]
    swaps = [(t["load_step"], t["old_unloaded"]) for t in timeline]
    validations = [w for t in timeline if None not in (w := t["validation_window"])]
    ok = samples.version >= 0
    masks = {
        "steady": ok & ~samples.inside((t["published"], t["old_unloaded"] + 0.2) for t in timeline),
        "swap_window": ok & samples.inside(swaps),
        "validation_window": ok & samples.inside(validations),
        # validation and swap together: comparable across validation: shadow and in_place
        "rollout_window": ok & samples.inside(t["rollout_window"] for t in timeline),
        # the swap window in three parts: waiting for TF Serving's poll, loading, label move + drain + unload
        "swap_waiting": ok & samples.inside((t["load_step"], t["loading"][0]) for t in timeline),
        "swap_loading": ok & samples.inside(t["loading"] for t in timeline),
        "swap_after_load": ok & samples.inside((t["loading"][1], t["old_unloaded"]) for t in timeline),
    }
    latency = {
        k: dict(zip(("p50", "p99", "p99.9"), percentiles(samples.latency[m], (50, 99, 99.9)), strict=True))
        for k, m in masks.items()
    }
    serve = np.array([t["served"] - t["published"] for t in timeline])
    poll_wait = np.array([t["detected"] - t["published"] for t in timeline])
    tfs_wait = np.array([t["tfs_poll_wait_s"] for t in timeline])
    raw_load = np.array([t["raw_load_s"] for t in timeline])
    validate = np.array([t["stages"]["validate"]["seconds"] for t in timeline])
    budget = raw_download + raw_load + validate
    stages = {s: float(np.mean([t["stages"][s]["seconds"] for t in timeline])) for s in STAGES[1:]}
    detect = [t["stages"]["detect"] for t in timeline]
    return {
        "promotions": len(timeline),
        "requests_sent": int(load["sent"]),
        "requests_failed": int(load["failed"]),
        "errors": load["errors"],
        "wrong_versions": len(samples.unvalidated(rec.promoted_at())),
        "latency_ms": latency,
        "requests": {k: int(m.sum()) for k, m in masks.items()},
        "swap_p99_over_steady_p99": latency["swap_window"]["p99"] / latency["steady"]["p99"],
        "rollout_p99_over_steady_p99": latency["rollout_window"]["p99"] / latency["steady"]["p99"],
        "first_answers_ms": dict(
            zip(
                ("p50", "max"),
                percentiles([v / 1000 for t in timeline for v in t["first_answers_ms"]], (50, 100)),
                strict=True,
            )
        ),
        "swap_window_s": _stats(np.array([b - a for a, b in swaps])),
        "time_to_serve_s": _stats(serve),
        "poll_wait_s": _stats(poll_wait),
        "tfs_file_poll_wait_s": _stats(tfs_wait),
        "stage_means_s": stages,
        "detect_pass_mean_s": sum(d["seconds"] for d in detect) / max(1.0, sum(d["count"] for d in detect)),
        "raw_download_s": raw_download,
        "raw_load_s": _stats(raw_load),
        "raw_budget_s": _stats(budget),
        "goal_ratio": _stats((serve - poll_wait) / budget),
        "goal_ratio_without_tfs_poll": _stats((serve - poll_wait - tfs_wait) / budget),
        "timeline": timeline,
        "plot": {"start": samples.start.tolist(), "latency": samples.latency.tolist(), "ok": ok.tolist()},
        "windows": {"swap": swaps, "validation": validations},
    }


def _stats(values: np.ndarray[Any, Any]) -> dict[str, float]:
    return {
        "mean": float(np.nanmean(values)),
        "median": float(np.nanmedian(values)),
        "max": float(np.nanmax(values)),
    }


# ---- output ----


LATENCY_ROWS = (
    ("steady", "steady"),
    ("swap_window", "swap window"),
    ("swap_waiting", "  waiting for poll"),
    ("swap_loading", "  loading"),
    ("swap_after_load", "  switch+unload"),
    ("validation_window", "validation"),
    ("rollout_window", "validation+swap"),
)


def report(name: str, r: Mapping[str, Any]) -> str:
    """The figures of one variant as a small table."""
    lat, n = r["latency_ms"], r["requests"]
    rows = [
        f"== {name}: {r['promotions']} promotions; {r['requests_sent']} requests, "
        f"{r['requests_failed']} failed, {r['wrong_versions']} answered by an unpromoted version",
        f"{'latency (ms)':20s} {'p50':>7s} {'p99':>7s} {'p99.9':>7s} {'requests':>9s}",
    ]
    for key, label in LATENCY_ROWS:
        row = lat[key]
        rows.append(f"{label:20s} {row['p50']:7.2f} {row['p99']:7.2f} {row['p99.9']:7.2f} {n[key]:9d}")
    stages = "  ".join(f"{k} {v * 1000:.0f}" for k, v in r["stage_means_s"].items())
    rows += [
        f"loads per version {r.get('loads_per_version', float('nan')):.2f}; "
        f"validation+swap p99 / steady p99 = {r['rollout_p99_over_steady_p99']:.2f}",
        f"swap p99 / steady p99 = {r['swap_p99_over_steady_p99']:.2f} "
        f"(windows {r['swap_window_s']['mean']:.2f} s); the new version's first {FIRST_ANSWERS} answers: "
        f"p50 {r['first_answers_ms']['p50']:.2f} ms, max {r['first_answers_ms']['max']:.2f} ms",
        f"time to serve {_ms(r['time_to_serve_s'])}; poll wait {_ms(r['poll_wait_s'])}; "
        f"TF Serving file-system poll wait in the load step {_ms(r['tfs_file_poll_wait_s'])}",
        f"stage means (ms): {stages}",
        f"raw (ms): download {r['raw_download_s'] * 1000:.0f}, load {_ms(r['raw_load_s'])}, "
        f"download + load + validate {_ms(r['raw_budget_s'])}",
        f"(serve - poll wait) / raw: {_ratio(r['goal_ratio'])}; also minus TF Serving's poll wait: "
        f"{_ratio(r['goal_ratio_without_tfs_poll'])}",
    ]
    return "\n".join(rows)


def _ms(stats: Mapping[str, float]) -> str:
    return f"mean {stats['mean'] * 1000:.0f} ms (max {stats['max'] * 1000:.0f})"


def _ratio(stats: Mapping[str, float]) -> str:
    return f"mean {stats['mean']:.2f} (max {stats['max']:.2f})"


def plot(results: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Per variant: latency over the whole run, swap windows shaded (validation lighter), and one promotion
    up close (the loading part of the swap window darker)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(results), 2, figsize=(13, 3.3 * len(results)), squeeze=False, gridspec_kw={"width_ratios": [3, 1]}
    )
    for (whole, close), (name, r) in zip(axes, results.items(), strict=True):
        start = np.asarray(r["plot"]["start"])
        t0 = start.min()
        latency, ok = np.asarray(r["plot"]["latency"]) * 1000, np.asarray(r["plot"]["ok"])
        middle = r["timeline"][len(r["timeline"]) // 2]
        for ax in (whole, close):
            for lo, hi in r["windows"]["validation"]:
                ax.axvspan(lo - t0, hi - t0, color="tab:orange", alpha=0.15, lw=0)
            for lo, hi in r["windows"]["swap"]:
                ax.axvspan(lo - t0, hi - t0, color="tab:red", alpha=0.2, lw=0)
            ax.scatter(start[ok] - t0, latency[ok], s=2, color="tab:blue", label="request")
            if (~ok).any():
                ax.scatter(start[~ok] - t0, latency[~ok], s=12, color="black", marker="x", label="failed")
            ax.axhline(r["latency_ms"]["steady"]["p99"], color="tab:green", lw=1, ls="--", label="steady p99")
            ax.set_yscale("log")
        lo, hi = middle["loading"]
        close.axvspan(lo - t0, hi - t0, color="tab:red", alpha=0.35, lw=0)
        close.set_xlim(middle["published"] - t0 - 0.2, middle["old_unloaded"] - t0 + 0.6)
        close.set_title(f"v{middle['version']} up close (dark: TF Serving loading it)", fontsize=9)
        lat = r["latency_ms"]
        whole.set_ylabel("latency (ms)")
        whole.set_title(
            f"{name}: p99 {lat['swap_window']['p99']:.1f} ms in swap windows (red) vs "
            f"{lat['steady']['p99']:.1f} ms steady; orange: validation in the shadow model",
            fontsize=9,
        )
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    axes[0, 0].legend(loc="upper right", fontsize=8, markerscale=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--promotions", type=int, default=20, help="consecutive promotions per variant")
    parser.add_argument("--rate", type=float, default=100.0, help="Predicts per second (open loop)")
    parser.add_argument("--weight-mb", type=float, default=32.0, help="MiB of variables in every version")
    parser.add_argument("--pause", type=float, default=1.0, help="steady seconds between promotions")
    parser.add_argument("--no-warmup", action="store_true", help="only the variant without warmup")
    parser.add_argument("--warmup-only", action="store_true", help="only the variant with warmup")
    parser.add_argument(
        "--validation",
        choices=("shadow", "in_place"),
        default="shadow",
        help="the model's validation setting (in_place: one load per version)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    parser.add_argument("--no-docs-image", action="store_true", help="do not copy the PNG to docs/img/")
    args = parser.parse_args(argv)
    variants = {"warmup": True, "no-warmup": False}
    if args.no_warmup:
        variants.pop("warmup")
    if args.warmup_only:
        variants.pop("no-warmup")
    results: dict[str, dict[str, Any]] = {}
    for name, warmup in variants.items():
        with tempfile.TemporaryDirectory(prefix=f"swap-{name}-") as tmp:
            started = time.monotonic()
            r = run_variant(
                Path(tmp),
                promotions=args.promotions,
                rate=args.rate,
                weight_mb=args.weight_mb,
                warmup=warmup,
                pause=args.pause,
                validation=args.validation,
            )
        r["settings"] = {
            **vars(args),
            "out": str(args.out),
            "variant": name,
            "seconds": time.monotonic() - started,
        }
        results[name] = r
        print(report(name, r), flush=True)
        suffix = ("" if warmup else "-no-warmup") + ("-in-place" if args.validation == "in_place" else "")
        write_json(args.out / f"swap{suffix}.json", r)
    png = plot(results, args.out / "swap.png")
    if not args.no_docs_image and len(results) == 2 and args.validation == "shadow":
        DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, DOCS_IMG)
    print(f"wrote {png} and JSON in {args.out}")
    failed = sum(r["requests_failed"] + r["wrong_versions"] for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
