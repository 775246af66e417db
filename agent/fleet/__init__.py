"""The fleet protocol: N agents roll a model version one slot at a time through records in the bucket.

``FleetCoordinator`` (store calls, each a compare-and-swap), ``decide`` (pure: the next ``FleetStep`` for a
pod) and the records in ``agent.core.fleet_records``. docs/fleet.md shows the flow; ADR 12 and 13 say why.
"""

from agent.fleet.coordinator import FleetCoordinator, fleet_uri, open_coordinator
from agent.fleet.decide import Action, FleetStep, PodState, decide
from agent.fleet.view import FleetParams, FleetView, SlotView, build_view

__all__ = [
    "Action",
    "FleetCoordinator",
    "FleetParams",
    "FleetStep",
    "FleetView",
    "PodState",
    "SlotView",
    "build_view",
    "decide",
    "fleet_uri",
    "open_coordinator",
]
