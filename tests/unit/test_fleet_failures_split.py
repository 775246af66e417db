"""benchmarks.fleet_live splits failed requests by time (testkit.harness): inside an aborted canary's bake
window or not."""

from __future__ import annotations

from datetime import datetime

from agent.service.demo.run import MODEL
from testkit.harness import aborted_bakes, failures_in_windows


def _line(t: float, text: str) -> str:
    return f"{datetime.fromtimestamp(t).strftime('%Y-%m-%d %H:%M:%S.%f')}: I manager.py] {text}\n"


T = 1_800_000_000.0
SHADOW = "{name: " + MODEL + "_shadow version: 5}"
SERVED = "{name: " + MODEL + " version: 5}"
CANARY_LOG = "".join(
    [
        _line(T + 1, f"Approving load for servable version {SHADOW}"),  # the validation: no traffic
        _line(T + 2, f"Successfully loaded servable version {SHADOW}"),
        _line(T + 10, f"Approving load for servable version {SERVED}"),
        _line(T + 11, f"Successfully loaded servable version {SERVED}"),
        _line(T + 16, f"Done unloading servable version {SERVED}"),
    ]
)


def test_the_window_runs_from_the_models_load_to_its_unload_shadow_loads_aside() -> None:
    assert aborted_bakes(CANARY_LOG, MODEL, [5]) == [(T + 10, T + 16, 5)]
    assert aborted_bakes(CANARY_LOG, MODEL, [9]) == []


def test_each_failed_request_is_placed_by_its_start_and_pod() -> None:
    windows = {"pod-1": aborted_bakes(CANARY_LOG, MODEL, [5]), "pod-2": []}
    loads = {
        "pod-1": {
            "samples": [(T + 12, 0.01, -1), (T + 13, 0.01, 1), (T + 20, 0.01, -1)],
            "failures": [(T + 12, "INVALID_ARGUMENT"), (T + 20, "UNAVAILABLE")],
        },
        "pod-2": {"samples": [(T + 12, 0.01, -1)]},  # an older load file: no codes
    }
    records = failures_in_windows(loads, windows, T)
    assert [(r["t_s"], r["pod"], r["code"], r["in_aborted_bake"]) for r in records] == [
        (12.0, "pod-1", "INVALID_ARGUMENT", True),
        (12.0, "pod-2", "?", False),
        (20.0, "pod-1", "UNAVAILABLE", False),
    ]
