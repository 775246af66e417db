"""Predict throughput and latency of tfs-devserver (or ``TFS_BINARY``) over gRPC on loopback.

Why: a fixed, repeatable number to compare later changes (and the stock binary) against. It builds a small
half_plus_two SavedModel, starts the server as a real process, warms it up, then runs ``--clients`` client
processes, each sending pre-serialized PredictRequests back to back (raw bytes: no TensorFlow in the clients)
for ``--seconds`` or ``--requests`` per client, whichever comes first. Prints requests/s and p50/p90/p99.

    python -m benchmarks.devserver [--clients 2] [--seconds 10] [--batch 1] [--weight-mb 0]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

PREDICT = "/tensorflow.serving.PredictionService/Predict"


def _client(address: str, payload: bytes, seconds: float, max_requests: int) -> tuple[list[float], int]:
    """Send requests back to back; returns (latencies in seconds, failures)."""
    import grpc

    latencies: list[float] = []
    failures = 0
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(PREDICT, request_serializer=None, response_deserializer=None)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline and len(latencies) + failures < max_requests:
            started = time.perf_counter()
            try:
                call(payload, timeout=30)
                latencies.append(time.perf_counter() - started)
            except grpc.RpcError:
                failures += 1
    return latencies, failures


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=2, help="client processes (default 2)")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measured duration per client (default 10)"
    )
    parser.add_argument("--requests", type=int, default=200_000, help="cap on requests per client")
    parser.add_argument("--batch", type=int, default=1, help="values per request (default 1)")
    parser.add_argument(
        "--weight-mb", type=float, default=0.0, help="extra loaded variable size in the model"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, workdir: Path) -> str:
    """Start a server, measure, stop it; returns the report."""
    from testkit.savedmodels import build_half_plus_two
    from testkit.servers import running_server, server_command

    base = workdir / "models" / "half_plus_two"
    build_half_plus_two(base, 1, weight_mb=args.weight_mb)
    with running_server(workdir, model_name="half_plus_two", model_base_path=base, rest=False) as server:
        from testkit.servers import predict_request

        payload = predict_request("half_plus_two", [1.0] * args.batch).SerializeToString()
        _client(server.grpc_address, payload, 1.0, 500)  # warm-up
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            started = time.perf_counter()
            jobs = [(server.grpc_address, payload, args.seconds, args.requests)] * args.clients
            results = pool.starmap(_client, jobs)
            elapsed = time.perf_counter() - started
    latencies = sorted(lat for lats, _ in results for lat in lats)
    failures = sum(f for _, f in results)
    if not latencies:
        return f"no successful requests ({failures} failures)"
    ms = [v * 1000 for v in latencies]
    return (
        f"server: {' '.join(server_command())}\n"
        f"model: half_plus_two, batch {args.batch}, weight {args.weight_mb} MB; "
        f"{args.clients} client processes\n"
        f"requests: {len(latencies)} ok, {failures} failed in {elapsed:.1f} s\n"
        f"throughput: {len(latencies) / elapsed:.0f} requests/s\n"
        f"latency ms: p50 {_percentile(ms, 0.5):.2f}  p90 {_percentile(ms, 0.9):.2f}  "
        f"p99 {_percentile(ms, 0.99):.2f}  mean {statistics.fmean(ms):.2f}  max {ms[-1]:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m benchmarks.devserver``."""
    args = _parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="devserver-bench-") as workdir:
        print(run(args, Path(workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
