"""REST API (B19, B20) and the Prometheus endpoint (B21) of a real server.

Runs against the devserver, or the stock binary with TFS_BINARY set (except the ``devserver_only`` test).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import urllib.request

import pytest

from testkit.savedmodels import build_example_model, build_gated_model, build_half_plus_two
from testkit.servers import ServerHandle, model_config, model_config_list


@pytest.fixture(scope="module")
def rest(shared_server: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> ServerHandle:
    """Shared server with hp (v1 a=1, v2 a=2, label stable=1), gt (a string input) and ex (Examples)."""
    root = tmp_path_factory.mktemp("rest-models")
    build_half_plus_two(root / "hp", 1, a=1.0)
    build_half_plus_two(root / "hp", 2, a=2.0)
    build_gated_model(root / "gt", 1)
    build_example_model(root / "ex", 1, a=1.0, b=1.0)
    entries = [model_config("gt", root / "gt"), model_config("ex", root / "ex")]
    shared_server.reload(model_config_list(model_config("hp", root / "hp", all_versions=True), *entries))
    shared_server.wait_for_state("hp", 1, "AVAILABLE")
    shared_server.wait_for_state("hp", 2, "AVAILABLE")
    labelled = model_config("hp", root / "hp", all_versions=True, labels={"stable": 1})
    shared_server.reload(model_config_list(labelled, *entries))
    return shared_server


def _ok(version: str) -> dict[str, object]:
    return {"version": version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def test_model_status_json(rest: ServerHandle) -> None:
    """B19: GET /v1/models/<m>[/versions/<v>|/labels/<l>] is GetModelStatus JSON; paths case-insensitive."""
    assert rest.http("GET", "/v1/models/hp") == (200, {"model_version_status": [_ok("2"), _ok("1")]})
    assert rest.http("GET", "/v1/models/hp/versions/1") == (200, {"model_version_status": [_ok("1")]})
    assert rest.http("GET", "/V1/Models/hp/Versions/2") == (200, {"model_version_status": [_ok("2")]})
    code, body = rest.http("GET", "/v1/models/hp/labels/stable")
    assert code == 200
    assert body["model_version_status"][-1] == _ok("1")


def test_metadata_json(rest: ServerHandle) -> None:
    """B19: GET .../metadata returns the model spec and the signature_def map."""
    code, body = rest.http("GET", "/v1/models/hp/versions/1/metadata")
    assert code == 200
    assert body["model_spec"]["name"] == "hp"
    assert body["model_spec"]["version"] == "1"
    serving = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert serving["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert list(serving["outputs"]) == ["y"]


def test_predict_row_and_columnar(rest: ServerHandle) -> None:
    """B19: row ("instances" -> "predictions") and columnar ("inputs" -> "outputs"), by version or label."""
    assert rest.http("POST", "/v1/models/hp:predict", {"instances": [1.0, 2.0]}) == (
        200,
        {"predictions": [4.0, 6.0]},
    )
    assert rest.http("POST", "/v1/models/hp/versions/1:predict", {"instances": [{"x": 1.0}]}) == (
        200,
        {"predictions": [3.0]},
    )
    assert rest.http("POST", "/v1/models/hp/labels/stable:predict", {"inputs": [2.0]}) == (
        200,
        {"outputs": [4.0]},
    )
    assert rest.http(
        "POST", "/V1/MODELS/hp:PREDICT", {"signature_name": "serving_default", "inputs": {"x": [0.0]}}
    )[1] == {"outputs": [2.0]}
    # gt's scalar "gate" input has no batch dimension, so only the columnar format can feed it.
    assert rest.http("POST", "/v1/models/gt:predict", {"inputs": {"x": [1.0, 2.0], "gate": {"b64": ""}}}) == (
        200,
        {"outputs": [3.0, 4.0]},
    )
    assert rest.http("POST", "/v1/models/gt:predict", {"inputs": {"x": [5.0], "gate": ""}}) == (
        200,
        {"outputs": [7.0]},
    )


def test_classify_and_regress_json(rest: ServerHandle) -> None:
    """B18/B19: :classify and :regress take tf.Example JSON."""
    body = {"signature_name": "regress", "examples": [{"x": 1.0}, {"x": 3.0}]}
    assert rest.http("POST", "/v1/models/ex:regress", body) == (200, {"result": [2.0, 4.0]})
    body = {"signature_name": "classify", "examples": [{"x": 1.0}]}
    assert rest.http("POST", "/v1/models/ex:classify", body) == (
        200,
        {"result": [[["lo", 2.0], ["hi", 4.0]]]},
    )


def test_errors_map_to_http_codes(rest: ServerHandle) -> None:
    """B20: errors are {"error": message}; INVALID_ARGUMENT 400, NOT_FOUND 404, FAILED_PRECONDITION 400."""
    assert rest.http("GET", "/v1/models/nope") == (
        404,
        {"error": "Could not find any versions of model nope"},
    )
    assert rest.http("POST", "/v1/models/nope:predict", {"instances": [1.0]}) == (
        404,
        {"error": "Servable not found for request: Latest(nope)"},
    )
    assert rest.http("POST", "/v1/models/hp/versions/9:predict", {"instances": [1.0]}) == (
        404,
        {"error": "Servable not found for request: Specific(hp, 9)"},
    )
    assert rest.http("POST", "/v1/models/hp/labels/gold:predict", {"instances": [1.0]}) == (
        400,
        {"error": "Unrecognized servable version label: gold"},
    )
    for bad in (b"{not json", {"instances": ["text"]}, {"nothing": 1}, {"instances": [1.0], "inputs": [1.0]}):
        code, body = rest.http("POST", "/v1/models/hp:predict", bad)
        assert code == 400
        assert set(body) == {"error"}
    code, body = rest.http("POST", "/v1/models/hp:predict", {"signature_name": "nope", "instances": [1.0]})
    assert (code, set(body)) == (400, {"error"})
    assert rest.http("POST", "/v1/models/hp:predict", {"instances": [1.0]}) == (200, {"predictions": [4.0]})


def test_prometheus_metrics(rest: ServerHandle) -> None:
    """B21: request counts and latencies per model, with TF Serving's ``:``-separated names."""
    rest.predict("hp", [1.0])
    rest.http("POST", "/v1/models/hp:predict", {"instances": [1.0]})
    assert rest.rest_url is not None
    with urllib.request.urlopen(rest.rest_url + "/monitoring/prometheus/metrics", timeout=30) as response:
        text = response.read().decode()
    assert ":tensorflow:serving:request_count" in text
    assert ':tensorflow:serving:request_count{model_name="hp",status="OK"}' in text
    assert ":tensorflow:serving:request_latency_bucket" in text


@pytest.mark.devserver_only
def test_prometheus_per_version_metrics(rest: ServerHandle) -> None:
    """B21: the devserver adds per-version request counts and latencies."""
    rest.predict("hp", [1.0], version=1)
    assert rest.rest_url is not None
    with urllib.request.urlopen(rest.rest_url + "/monitoring/prometheus/metrics", timeout=30) as response:
        text = response.read().decode()
    assert (
        ':tfs_devserver:request_count{model_name="hp",version="1",API="predict",entrypoint="GRPC",status="OK"}'
        in text
    )
    assert (
        ':tfs_devserver:request_latency_count{model_name="hp",version="1",API="predict",entrypoint="GRPC"}'
        in text
    )
