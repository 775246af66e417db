"""A load generator in its own process: open-loop Predicts at a fixed rate, counting failures and latency.

``python -m agent.service.demo.load ADDRESS MODEL RATE OUT_JSON``; on SIGTERM it writes counts to OUT_JSON:
``sent``, ``failed``, ``errors`` (count per "CODE: details"), ``samples`` (start, latency s, version; -1 for a
failed request) and ``failures`` (start, gRPC status code name) for each failed request, so a reader can tell
a refused connection (``UNAVAILABLE``) from the server's own error. Open loop (requests start on schedule
whatever the previous one did), so a stall shows as latency, not as fewer requests.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from agent.adapters.tfserving import protos
from agent.adapters.tfserving.tensors import from_proto, to_proto


class Load:
    def __init__(self, address: str, model: str, label: str | None) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = protos.prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model, self.label = model, label
        self.lock = threading.Lock()
        self.sent = self.failed = 0
        self.errors: dict[str, int] = {}
        self.samples: list[tuple[float, float, int]] = []  # (start, latency s, version; -1 failed)
        self.failures: list[tuple[float, str]] = []  # (start, status code name) of each failed one

    def one(self, start: float, scheduled: float) -> None:
        """One Predict; its latency counts from ``scheduled`` (perf_counter when it was due), so time spent
        waiting for a free worker while the server stalls shows as latency too (no coordinated omission)."""
        request = protos.predict_pb2.PredictRequest()
        request.model_spec.name = self.model
        if self.label:
            request.model_spec.version_label = self.label
        request.inputs["x"].CopyFrom(to_proto(np.asarray([1.0, 2.0, 5.0], dtype=np.float32)))
        code = None
        try:
            response = self.stub.Predict(request, timeout=10)
            from_proto(response.outputs["y"])
            version = int(response.model_spec.version.value)
        except grpc.RpcError as err:
            version, code = -1, err.code().name
            key = f"{code}: {err.details()}"[:200]
            with self.lock:
                self.errors[key] = self.errors.get(key, 0) + 1
        latency = time.perf_counter() - scheduled
        with self.lock:
            self.sent += 1
            self.samples.append((start, latency, version))
            if code is not None:
                self.failed += 1
                self.failures.append((start, code))

    def result(self) -> dict[str, Any]:
        with self.lock:
            return {
                "sent": self.sent,
                "failed": self.failed,
                "errors": self.errors,
                "samples": self.samples,
                "failures": self.failures,
            }


def run(address: str, model: str, rate: float, out: Path, label: str | None = None) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    load = Load(address, model, label)
    period = 1.0 / rate
    with ThreadPoolExecutor(max_workers=16) as pool:
        next_at = time.perf_counter()
        while not stop.is_set():
            pool.submit(load.one, time.time(), time.perf_counter())
            next_at += period
            stop.wait(max(0.0, next_at - time.perf_counter()))
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(load.result()))
    tmp.replace(out)


if __name__ == "__main__":
    args = sys.argv[1:]
    run(args[0], args[1], float(args[2]), Path(args[3]), args[4] if len(args) > 4 else None)
