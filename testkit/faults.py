"""The fault catalogue and the matrix that runs it (``python -m benchmarks.faults`` prints the figures).

Each fault is injected N times under client load (Predicts on the ``stable`` label from another process) into
ONE long-lived world — fake-gcs-server behind a fault-injecting loopback proxy, the agent as a real process
reading ``gs://`` through that proxy, tfs-devserver, the model volume on a small tmpfs — publishing version
after version instead of restarting everything per trial. Per trial it records: client requests that failed,
answers from a version the agent had not promoted by then (``Recorder.promoted_at``), whether the agent
converged once the fault was cleared (the expected version serving with nothing pending, TF Serving showing it
AVAILABLE, the config file labelling it and holding no shadow), and how long that took. A short run (one trial
each) is ``tests/e2e/test_faults.py`` in ``make test``.

Faults and what "cleared" means (convergence is timed from then):
- ``bucket_5xx``: the proxy answers 503 to the first 3 object downloads of the version; cleared when it sent
  the last one. ``bucket_timeout``: the first 2 downloads stall mid-body for ``--stall`` s and the connection
  drops (a load balancer's idle timeout; ``--stall 65`` outlasts the agent's own 60 s read timeout instead).
- ``corrupt_after_manifest``: an object is overwritten (same size, other bytes) after the manifest is written,
  before the agent can read it; must be quarantined; cleared = the next good version published.
- ``manifest_missing``: every file but the manifest uploaded; the agent must ignore the version for 3 polls;
  cleared = the manifest written.
- ``load_fails`` (corrupt saved_model.pb) and ``golden_mismatch`` (wrong answers): quarantined; cleared =
  the next good version published.
- ``tfs_restart``: TF Serving SIGKILLed while the agent is at ``pending.step = load`` and started again on the
  agent's config file (as a supervisor would); cleared = the new process launched. Requests cannot succeed
  while no server listens: a request in flight at the kill, and one that failed with ``UNAVAILABLE``
  (connection refused or reset, or the client's channel still in reconnect backoff) between the kill and the
  restarted server's first answer to the client, are counted apart; any other error, or one outside that
  span, counts as a failure.
- ``agent_kill_<step>``: the agent SIGKILLed at ``stage`` (object downloads held at the proxy, so staging is
  under way), ``validate`` (shadow model in the config file), ``load``/``switch``/``bake`` (that
  ``pending.step`` recorded), then restarted; cleared = the restart. The step the state file shows after the
  kill is recorded; a ``switch`` step can end before the kill lands (it lasts milliseconds), then the trial
  is counted as a miss and not as an injection.
- ``disk_full``: downloads held at the proxy (the agent has passed its free-space preflight and is staging),
  the tmpfs filled with fallocate, downloads released, so writes fail with ENOSPC; cleared = the filler
  removed once the agent has failed at least twice. Needs root for ``mount -t tmpfs``; without it the fault
  is skipped and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from agent.adapters.sources.gcs import GcsSink
from testkit.faultworld import BUCKET, HeldManifest, Rule, Trial, World, fill
from testkit.harness import SHADOW, Samples, counter
from testkit.poll import poll_until
from testkit.savedmodels import build_half_plus_two, corrupt_savedmodel
from testkit.stack import MODEL

FAULTS = (
    "bucket_5xx",
    "bucket_timeout",
    "corrupt_after_manifest",
    "manifest_missing",
    "load_fails",
    "golden_mismatch",
    "tfs_restart",
    "agent_kill_stage",
    "agent_kill_validate",
    "agent_kill_load",
    "agent_kill_switch",
    "agent_kill_bake",
    "disk_full",
)


# ---- the faults ----
POLL_SECONDS = 0.5  # testkit/stack.py's schedule


def bucket_5xx(w: World, t: Trial) -> None:
    rule = w.proxy.add(Rule(t.version, "status", times=3))
    w.publish(t.version)
    poll_until(lambda: rule.hits >= rule.times, timeout=60, what="three downloads answered 503")
    t.cleared = rule.last_hit


def bucket_timeout(w: World, t: Trial) -> None:
    rule = w.proxy.add(Rule(t.version, "cut", times=2, stall=w.stall))
    w.publish(t.version)
    poll_until(lambda: rule.hits >= rule.times, timeout=60, what="two downloads stalled")
    t.cleared = rule.last_hit + rule.stall


def corrupt_after_manifest(w: World, t: Trial) -> None:
    rule = w.proxy.add(Rule(t.version, "hold"))
    w.publish(t.version)
    blob = w.client.bucket(BUCKET).blob(f"{MODEL}/{t.version}/saved_model.pb")
    blob.upload_from_string(bytes(b ^ 0xFF for b in blob.download_as_bytes()))
    rule.released.set()
    _rejected_then_good(w, t)


def manifest_missing(w: World, t: Trial) -> None:
    sink = HeldManifest(GcsSink(w.uri, client=w.client))
    uploaded = w.publish(t.version, sink=sink)
    poll_until(
        lambda: (w.rec.latest().record.get("last_poll") or 0) > uploaded + 3 * POLL_SECONDS,
        timeout=60,
        what="three polls after the upload",
    )
    local = w.stack.volume / MODEL
    touched = [
        p.name
        for p in local.iterdir()
        if p.name == str(t.version) or p.name.startswith(f".staging-{t.version}-")
    ]
    record = w.record()
    if touched or str(t.version) in record.get("quarantined", {}) or record.get("pending"):
        t.problems.append(f"an incomplete version was acted on: {touched} {record}")
    t.detail = "ignored for 3 polls without its manifest"
    sink.release()
    t.cleared = time.time()


def load_fails(w: World, t: Trial) -> None:
    w.publish(t.version, lambda base, v: Path(corrupt_savedmodel(build_half_plus_two(base, v))).parent)
    _rejected_then_good(w, t)


def golden_mismatch(w: World, t: Trial) -> None:
    w.publish(t.version, lambda base, v: build_half_plus_two(base, v, b=3.0))
    _rejected_then_good(w, t)


def _rejected_then_good(w: World, t: Trial) -> None:
    reason = w.quarantined(t.version)
    t.detail = f"v{t.version} quarantined: {reason[:80]}"
    t.version = w.take_version()
    t.cleared = w.publish(t.version)


def tfs_restart(w: World, t: Trial) -> None:
    fired = w.rec.arm(lambda view: view.step == (t.version, "load"))
    w.publish(t.version)
    poll_until(fired.is_set, timeout=60, interval=0.005, what="the load step")
    t.cleared = time.time()
    w.stack.restart_server(kill=True)
    t.outage = (t.cleared, time.time())  # extended to the first answer after the restart when scoring
    t.detail = f"killed at pending.step=load; back after {time.time() - t.cleared:.1f} s"


def agent_kill_stage(w: World, t: Trial) -> None:
    rule = w.proxy.add(Rule(t.version, "hold"))
    w.publish(t.version)
    poll_until(rule.held.is_set, timeout=60, what="a download held at the proxy")
    w.kill_agent()
    staging = [p.name for p in (w.stack.volume / MODEL).glob(f".staging-{t.version}-*")]
    w.proxy.clear()
    _restart_agent(w, t, f"staging dir {staging[0] if staging else 'not yet created'}")


def _kill_at(step: str) -> Callable[[World, Trial], None]:
    def inject(w: World, t: Trial) -> None:
        if step == "validate":
            fired = w.rec.arm(
                lambda v: SHADOW in v.config and v.config[SHADOW].versions == (t.version,), w.kill_agent
            )
        else:
            fired = w.rec.arm(lambda v: v.step == (t.version, step), w.kill_agent)
        w.publish(t.version)
        poll_until(lambda: fired.is_set() or w.converged(t.version), timeout=60, interval=0.005, what=step)
        if not fired.is_set():
            t.injected, t.detail, t.cleared = (
                False,
                f"missed: the {step} step ended before the kill",
                time.time(),
            )
            return
        w.agent_process().wait(10)
        pending = w.record().get("pending") or {}
        shown = pending.get("step", "none") if pending.get("version") == t.version else "none"
        if step == "validate":
            where = "in" if SHADOW in w.stack.config_file.read_text() else "gone from"
            _restart_agent(w, t, f"killed with the shadow {where} the config file, pending.step={shown}")
        else:
            _restart_agent(w, t, f"killed with pending.step={shown}")
        if step in ("load", "switch", "bake") and shown != step:
            t.injected, t.detail = False, t.detail + f" (missed {step})"

    return inject


def _restart_agent(w: World, t: Trial, detail: str) -> None:
    w.agent_process().wait(10)
    t.detail = detail
    t.cleared = time.time()
    w.stack.restart_agent(kill=True)


def disk_full(w: World, t: Trial) -> None:
    if not w.on_tmpfs:
        t.injected, t.detail, t.cleared = False, "skipped: could not mount a tmpfs (needs root)", time.time()
        return
    rule = w.proxy.add(Rule(t.version, "hold"))
    w.publish(t.version)
    poll_until(rule.held.is_set, timeout=60, what="a download held at the proxy")
    errors, failed = _disk_errors(w), counter(w.stack, "tfs_agent_polls", outcome="error")
    filler = w.stack.volume / ".filler"
    fill(filler)
    w.proxy.clear()
    poll_until(
        lambda: (
            _disk_errors(w) > errors and counter(w.stack, "tfs_agent_polls", outcome="error") >= failed + 2
        ),
        timeout=60,
        what="staging failing on the full volume, and one more pass",
    )
    passes = counter(w.stack, "tfs_agent_polls", outcome="error") - failed
    t.detail = f"ENOSPC while staging (DiskSpaceError); {passes:.0f} failed passes counted until freed"
    filler.unlink()
    t.cleared = time.time()


def _disk_errors(w: World) -> float:
    return counter(w.stack, "tfs_agent_errors", error="DiskSpaceError")


CASES: dict[str, Callable[[World, Trial], None]] = {
    "bucket_5xx": bucket_5xx,
    "bucket_timeout": bucket_timeout,
    "corrupt_after_manifest": corrupt_after_manifest,
    "manifest_missing": manifest_missing,
    "load_fails": load_fails,
    "golden_mismatch": golden_mismatch,
    "tfs_restart": tfs_restart,
    "agent_kill_stage": agent_kill_stage,
    **{f"agent_kill_{s}": _kill_at(s) for s in ("validate", "load", "switch", "bake")},
    "disk_full": disk_full,
}


# ---- running and scoring ----


def run_trials(
    w: World, faults: Sequence[str], trials: int, log: Callable[[str], None] = print
) -> list[Trial]:
    done: list[Trial] = []
    for fault in faults:
        for _ in range(trials):
            trial = Trial(fault, w.take_version(), started=time.time())
            CASES[fault](w, trial)
            if trial.injected or not trial.detail.startswith("skipped"):
                w.settle(trial)
            else:
                trial.ended = time.time()
            done.append(trial)
            log(
                f"{fault:24s} v{trial.version:<4d} converged={trial.converged} "
                f"in {trial.converge_s or 0:.2f} s  {trial.detail}"
            )
    return done


NO_SERVER = "UNAVAILABLE"
"""gRPC's code when no server answered: connection refused or reset, or the channel's reconnect backoff."""


def _down(trials: Sequence[Trial], samples: Samples) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Requests overlapping a span when the server was known down: from a kill until the restarted server's
    first answer to this client. Each trial's ``outage`` is set to that span (it ended at the launch).

    A gRPC channel that saw the server go learns that it is back only by reconnecting (1 s backoff, x1.6
    per attempt), so the span runs to the first answer, not to the launch; an answer's end, not its start,
    since a request may wait for the channel to connect while later ones fail fast."""
    down = np.zeros(len(samples.start), dtype=bool)
    for t in trials:
        if t.outage is None:
            continue
        answered = (samples.version >= 0) & (samples.end >= t.outage[1])
        back = float(samples.end[answered].min()) if answered.any() else t.ended
        t.outage = (t.outage[0], back)
        down |= (samples.end >= t.outage[0]) & (samples.start <= back)
    return down


def _cut_by_a_kill(trials: Sequence[Trial], samples: Samples) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Requests in flight when a server was killed: whatever the code (the client may see the stream reset
    as UNKNOWN), the process that was answering them died."""
    cut = np.zeros(len(samples.start), dtype=bool)
    for t in trials:
        if t.outage is not None:
            cut |= (samples.start < t.outage[0]) & (samples.end >= t.outage[0])
    return cut


def score(trials: Sequence[Trial], samples: Samples, promoted_at: Mapping[int, float]) -> dict[str, int]:
    """Fill each trial's request counts; returns the counts outside every trial."""
    wrong_starts = [s for s, _ in samples.unvalidated(promoted_at)]
    failed = samples.version < 0
    covered = samples.start < 0
    excused = failed & (
        ((samples.code == NO_SERVER) & _down(trials, samples)) | _cut_by_a_kill(trials, samples)
    )
    for t in trials:
        inside = (samples.start >= t.started) & (samples.start < t.ended)
        covered |= inside
        t.requests = int(inside.sum())
        # By the trial a request started in, like the rest: a client still reconnecting after one kill
        # may meet the next trial's kill, and the two outages overlap.
        t.failed_in_outage = int((excused & inside).sum())
        inside &= ~excused
        t.failed = int((failed & inside).sum())
        mask = failed & inside
        rows = zip(samples.start[mask], samples.latency[mask], samples.code[mask], strict=True)
        t.failures = [(float(s), float(lat), str(code)) for s, lat, code in rows]
        t.wrong = sum(1 for s in wrong_starts if t.started <= s < t.ended)
    outside = ~covered
    return {
        "requests": int(outside.sum()),
        "failed": int((failed & outside & ~excused).sum()),
        "wrong": sum(1 for s in wrong_starts if not any(t.started <= s < t.ended for t in trials)),
    }


def run(
    tmp: Path,
    *,
    trials: int,
    faults: Sequence[str] = FAULTS,
    rate: float = 50.0,
    stall: float = 2.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole matrix in one world; returns the report (``table`` and ``goals`` summarise it)."""
    started = time.monotonic()
    with World(tmp, rate=rate, stall=stall) as w:
        done = run_trials(w, faults, trials, log)
        result = w.load.stop()
        promoted = w.rec.promoted_at()
        on_tmpfs = w.on_tmpfs
    samples = Samples.of(result)
    between = score(done, samples, promoted)
    rows = [summarise(fault, [t for t in done if t.fault == fault]) for fault in faults]
    return {
        "settings": {"trials": trials, "rate": rate, "stall": stall, "volume_on_tmpfs": on_tmpfs},
        "seconds": time.monotonic() - started,
        "requests": {"sent": result["sent"], "failed": result["failed"], "errors": result["errors"]},
        "between_trials": between,
        "rows": rows,
        "totals": summarise("total", done),
        "trials": [asdict(t) for t in done],
    }


def summarise(name: str, trials: Sequence[Trial]) -> dict[str, Any]:
    hit = [t for t in trials if t.injected]
    times = sorted(t.converge_s for t in hit if t.converge_s is not None)
    return {
        "fault": name,
        "injections": len(hit),
        "missed": len(trials) - len(hit),
        "requests": sum(t.requests for t in trials),
        "failed": sum(t.failed for t in trials),
        "failed_while_no_server": sum(t.failed_in_outage for t in trials),
        "wrong_versions": sum(t.wrong for t in trials),
        "converged": sum(1 for t in hit if t.converged),
        "problems": [p for t in trials for p in t.problems],
        "converge_s_median": times[len(times) // 2] if times else None,
        "converge_s_max": times[-1] if times else None,
        "notes": sorted({t.detail.split(";")[0] for t in trials if t.detail})[:3],
    }


def table(report: Mapping[str, Any]) -> str:
    head = "fault                     inj   reqs failed no-srv wrong    conv  med s  max s"
    lines = [head, "-" * len(head)]
    for row in [*report["rows"], report["totals"]]:
        conv = f"{row['converged']}/{row['injections']}"
        med, top = (
            f"{row[k]:.2f}" if row[k] is not None else "-" for k in ("converge_s_median", "converge_s_max")
        )
        lines.append(
            f"{row['fault']:24s} {row['injections']:4d} {row['requests']:6d} {row['failed']:6d} "
            f"{row['failed_while_no_server']:6d} {row['wrong_versions']:5d} {conv:>7s} {med:>6s} {top:>6s}"
        )
    b = report["between_trials"]
    lines.append(
        f"between trials: {b['requests']} requests, {b['failed']} failed, {b['wrong']} wrong versions"
    )
    return "\n".join(lines)


def goals(report: Mapping[str, Any], *, min_injections: int = 0) -> list[str]:
    """Every goal missed, in words (empty: all met). no-srv failures (no TF Serving process) are excused."""
    t, b = report["totals"], report["between_trials"]
    missed = []
    if t["injections"] < min_injections:
        missed.append(f"{t['injections']} injections < {min_injections}")
    if t["failed"] or b["failed"]:
        missed.append(f"{t['failed'] + b['failed']} requests failed")
    if t["wrong_versions"] or b["wrong"]:
        missed.append(f"{t['wrong_versions'] + b['wrong']} answers from unvalidated versions")
    if t["converged"] < t["injections"]:
        missed.append(f"{t['injections'] - t['converged']} injections did not converge")
    if t["problems"]:
        missed.append(f"problems: {t['problems']}")
    return missed
