"""One pod's side of a slot race, as its own OS process: ``python -m testkit.fleetrace STORE POD GATE OUT``.

The agent's own FleetCoordinator against the fleet records at STORE (a file:// or gs:// URI; gs:// reads
STORAGE_EMULATOR_HOST): heartbeat, observe, decide (a pod on v1 behind a rolling release: TAKE_SLOT), then
write ``GATE/ready-POD`` and wait for ``GATE/go``, so every racer sends its CAS at the same moment. Then
``apply`` the step, observe again and decide again (a loser must re-read and re-decide, never resend), and
write to OUT: ``{"first", "won", "then", "then_reason", "lost_races"}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from agent.adapters.sources import open_record_store
from agent.core.fleet_records import LedgerEntry
from agent.fleet import FleetCoordinator, FleetParams, PodState, decide
from agent.infra.clock import SystemClock

GATE_TIMEOUT = 60.0


def race(store_uri: str, pod: str, gate: Path) -> dict[str, object]:
    clock = SystemClock()
    coordinator = FleetCoordinator(open_record_store(store_uri), FleetParams(fleet="prod", pod=pod), clock)
    state = PodState(serving=1)
    assert coordinator.heartbeat(LedgerEntry(pod, 1, 1, "idle", None, clock.time()))
    step = decide(coordinator.observe(state), state)
    (gate / f"ready-{pod}").touch()
    deadline = time.monotonic() + GATE_TIMEOUT
    while not (gate / "go").exists():  # a spin, not a sleep: the racers must leave the gate together
        if time.monotonic() > deadline:
            raise SystemExit(f"{pod}: no {gate / 'go'} within {GATE_TIMEOUT:g} s")
    won = coordinator.apply(step, state)
    then = decide(coordinator.observe(state), state)
    return {
        "first": str(step.action),
        "won": won,
        "then": str(then.action),
        "then_reason": then.reason,
        "lost_races": coordinator.lost_races,
    }


if __name__ == "__main__":
    uri, name, gate_dir, out = sys.argv[1:5]
    Path(out).write_text(json.dumps(race(uri, name, Path(gate_dir))))
