"""A first end-to-end check of the launcher, the builders and the server (later suites cover each B#).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

from pathlib import Path

from testkit.savedmodels import build_half_plus_two
from testkit.servers import running_server


def test_serves_a_savedmodel_over_grpc_and_rest(tmp_path: Path) -> None:
    """B16/B19: a single-model server serves Predict over gRPC and status over REST."""
    base = tmp_path / "models" / "m"
    build_half_plus_two(base, 1)
    with running_server(tmp_path, model_name="m", model_base_path=base) as server:
        assert server.predict("m", [1.0, 2.0]) == ([2.5, 3.0], 1)
        code, body = server.http("GET", "/v1/models/m")
        assert code == 200
        assert body == {
            "model_version_status": [
                {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        }
