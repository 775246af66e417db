"""A Predict load generator run as a separate process by the swap tests and usable by benchmarks.

Why a separate process with raw bytes: the load must come from outside the test process (its own GIL, like a
real client), start fast (no TensorFlow import: requests are pre-serialized PredictRequests sent with an
identity serializer), and report exactly what happened. It sends the given requests round-robin until the stop
file exists or ``--max-seconds`` pass, and writes a JSON summary: ok and failed counts, failure codes, and
every distinct response payload (base64) so the caller can see which versions served.

    python -m tests.devserver.load_client --address localhost:8500 --requests reqs.bin --stop stop \
        --progress progress.json --summary summary.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import struct
import time
from collections import Counter
from pathlib import Path

import grpc

PREDICT = "/tensorflow.serving.PredictionService/Predict"


def write_requests(path: Path, payloads: list[bytes]) -> None:
    """Store serialized requests as length-prefixed records."""
    path.write_bytes(b"".join(struct.pack("<I", len(p)) + p for p in payloads))


def read_requests(path: Path) -> list[bytes]:
    """Read records written by ``write_requests``."""
    data, payloads, offset = path.read_bytes(), [], 0
    while offset < len(data):
        (size,) = struct.unpack_from("<I", data, offset)
        payloads.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return payloads


def _write_json(path: Path, value: object) -> None:
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(value))
    os.replace(staged, path)


def main() -> None:
    """Send requests until told to stop; see the module docstring."""
    parser = argparse.ArgumentParser()
    for name in ("--address", "--requests", "--stop", "--progress", "--summary"):
        parser.add_argument(name, required=True)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    payloads = read_requests(Path(args.requests))
    ok, failures, responses = 0, Counter[str](), Counter[bytes]()
    deadline = time.monotonic() + args.max_seconds
    with grpc.insecure_channel(args.address) as channel:
        call = channel.unary_unary(PREDICT, request_serializer=None, response_deserializer=None)
        sent = 0
        while time.monotonic() < deadline and not os.path.exists(args.stop):
            try:
                responses[call(payloads[sent % len(payloads)], timeout=30)] += 1
                ok += 1
            except grpc.RpcError as exc:
                failures[f"{exc.code().name}: {exc.details()}"] += 1
            sent += 1
            if sent % 25 == 0:
                _write_json(Path(args.progress), {"sent": sent})
    summary = {
        "ok": ok,
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "responses": {base64.b64encode(k).decode(): v for k, v in responses.items()},
    }
    _write_json(Path(args.summary), summary)


if __name__ == "__main__":
    main()
