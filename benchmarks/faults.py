"""The fault matrix: ``python -m benchmarks.faults --trials N`` (flags: ``--help``).

Injects each fault of the catalogue (testkit/faults.py, which describes every fault and what "cleared" means)
N times under client load into one long-lived world, and prints per fault: injections, failed requests,
answers from unpromoted versions, convergence and its time. One trial of each runs in ``make test``
(tests/e2e/test_faults.py).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from testkit.faults import FAULTS, goals, run, table
from testkit.harness import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--trials", type=int, default=16, help="injections per fault (13 faults)")
    parser.add_argument("--rate", type=float, default=50.0, help="client Predicts per second")
    parser.add_argument("--stall", type=float, default=2.0, help="seconds a bucket_timeout download stalls")
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help="comma-separated subset of: " + ", ".join(FAULTS)
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "faults.json")
    args = parser.parse_args(argv)
    faults = [f for f in args.faults.split(",") if f]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown faults: {unknown}")
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        report = run(Path(tmp), trials=args.trials, faults=faults, rate=args.rate, stall=args.stall)
    print(table(report))
    missed = goals(report, min_injections=200 if args.trials >= 16 and len(faults) == len(FAULTS) else 0)
    print("goals met" if not missed else "goals MISSED: " + "; ".join(missed))
    print(f"{report['seconds']:.0f} s; wrote {write_json(args.out, report)}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
