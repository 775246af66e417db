"""REST pieces in-process: JSON encodings (B19), HTTP status mapping and the request timeout (B20), metrics
text (B21), and config parsing messages (B2).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from tfs_devserver import config as cfg
from tfs_devserver.monitoring import Metrics, prometheus_name
from tfs_devserver.rest import RestApi, http_code
from tfs_devserver.rest_json import examples_input, predict_response, request_inputs
from tfs_devserver.servable import Signature, TensorInfo
from tfs_devserver.status import Code, ServingError

SIG = Signature(
    key="serving_default",
    method_name="tensorflow/serving/predict",
    inputs={"x": TensorInfo(types_pb2.DT_FLOAT, (-1,)), "s": TensorInfo(types_pb2.DT_STRING, (-1,))},
    outputs={},
)
ONE = Signature("serving_default", "", {"x": TensorInfo(types_pb2.DT_FLOAT, (-1,))}, {})


def test_row_format_named_and_unnamed() -> None:
    """B19: instances are values (one input) or objects naming every input; {"b64"} decodes to bytes."""
    inputs, row = request_inputs({"instances": [{"x": 1, "s": "a"}, {"x": 2.5, "s": {"b64": "AAE="}}]}, SIG)
    assert row
    assert inputs["x"].dtype == np.float32
    assert inputs["x"].tolist() == [1.0, 2.5]
    assert inputs["s"].tolist() == [b"a", b"\x00\x01"]
    inputs, _ = request_inputs({"instances": [1, 2]}, ONE)
    assert inputs["x"].tolist() == [1.0, 2.0]


def test_columnar_format() -> None:
    """B19: "inputs" is a value (one input) or an object of named values."""
    inputs, row = request_inputs({"inputs": {"x": [1], "s": ["q"]}}, SIG)
    assert not row
    assert inputs["s"].tolist() == [b"q"]
    assert request_inputs({"inputs": [[1, 2]]}, ONE)[0]["x"].shape == (1, 2)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"instances": [1], "inputs": [1]},
        {"instances": []},
        {"instances": ["text"]},
        {"instances": [{"x": 1}]},
        {"instances": [{"b64": "%%%"}]},
    ],
)
def test_bad_request_bodies(body: dict[str, Any]) -> None:
    """B20: malformed bodies are INVALID_ARGUMENT."""
    signature = SIG if body.get("instances") == [{"x": 1}] else ONE
    with pytest.raises(ServingError) as error:
        request_inputs(body, signature)
    assert error.value.code is Code.INVALID_ARGUMENT


def test_outputs() -> None:
    """B19: one output gives a plain list; several give objects per row; ``*_bytes`` outputs are base64."""
    y = np.array([1.0, 2.0], dtype=np.float32)
    names = np.array([b"a", b"b"], dtype=object)
    assert predict_response({"y": y}, row=True) == {"predictions": [1.0, 2.0]}
    assert predict_response({"y": y, "n": names}, row=True) == {
        "predictions": [{"y": 1.0, "n": "a"}, {"y": 2.0, "n": "b"}]
    }
    assert predict_response({"y_bytes": names}, row=False) == {"outputs": [{"b64": "YQ=="}, {"b64": "Yg=="}]}
    with pytest.raises(ServingError):
        predict_response({"y": y, "z": np.zeros(3)}, row=True)


def test_examples_json() -> None:
    """B18/B19: :classify/:regress examples become tf.Example features by JSON type, with context."""
    request = examples_input({"context": {"c": "x"}, "examples": [{"f": 1.5, "i": 2, "b": {"b64": "AA=="}}]})
    example = request.example_list_with_context.examples[0]
    assert list(example.features.feature["f"].float_list.value) == [1.5]
    assert list(example.features.feature["i"].int64_list.value) == [2]
    assert list(example.features.feature["b"].bytes_list.value) == [b"\x00"]
    assert list(request.example_list_with_context.context.features.feature["c"].bytes_list.value) == [b"x"]


@pytest.mark.parametrize(
    ("code", "http"),
    [
        (Code.OK, 200),
        (Code.INVALID_ARGUMENT, 400),
        (Code.FAILED_PRECONDITION, 400),
        (Code.OUT_OF_RANGE, 400),
        (Code.NOT_FOUND, 404),
        (Code.UNAVAILABLE, 503),
        (Code.RESOURCE_EXHAUSTED, 429),
        (Code.DEADLINE_EXCEEDED, 504),
        (Code.UNKNOWN, 500),
        (Code.INTERNAL, 500),
        (Code.DATA_LOSS, 500),
    ],
)
def test_http_codes(code: Code, http: int) -> None:
    """B20: the stock mapping of status codes to HTTP codes."""
    assert http_code(code) == http


class _BlockedCore:
    """A core whose servable never arrives until released (a stuck request)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    @contextmanager
    def servable(self, spec: Any) -> Iterator[Any]:
        self.release.wait(30)
        raise ServingError(Code.NOT_FOUND, "gone")
        yield


def test_rest_timeout_is_deadline_exceeded() -> None:
    """B20: a request running past --rest_api_timeout_in_ms answers 504 DEADLINE_EXCEEDED."""
    core = _BlockedCore()
    api = RestApi(core, Metrics(), timeout_ms=50, monitoring_path=None)  # type: ignore[arg-type]
    try:
        code, _, body = api.post("/v1/models/m:predict", b'{"instances": [1]}')
    finally:
        core.release.set()
    assert (code, body) == (504, '{"error": "Deadline Exceeded"}')


def test_unmatched_paths() -> None:
    """B20: a /v1 path that is not an API is a 400 "Malformed request"; anything else 404."""
    api = RestApi(None, Metrics(), timeout_ms=0, monitoring_path=None)  # type: ignore[arg-type]
    assert api.get("/v1/bogus")[0] == 400
    assert "Malformed request: GET /v1/bogus" in api.get("/v1/bogus")[2]
    assert api.get("/elsewhere")[0] == 404


def test_prometheus_names_and_text() -> None:
    """B21: every non [A-Za-z0-9_] character becomes ':'; counters and histograms in text format."""
    assert prometheus_name("/tensorflow/serving/request_count") == ":tensorflow:serving:request_count"
    metrics = Metrics()
    metrics.record_request("m", 3, "predict", "GRPC", Code.OK, 0.001)
    metrics.record_request("m", None, "predict", "REST", Code.NOT_FOUND, 0.002)
    text = metrics.render()
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 1' in text
    assert ':tensorflow:serving:request_count{model_name="m",status="NOT_FOUND"} 1' in text
    labels = 'model_name="m",API="predict",entrypoint="GRPC"'
    assert f':tensorflow:serving:request_latency_bucket{{{labels},le="+Inf"}} 1' in text
    assert (
        ':tensorflow:serving:request_latency_sum{model_name="m",API="predict",entrypoint="GRPC"} 1000' in text
    )


def test_config_parse_error_names_line_and_column(tmp_path: Path) -> None:
    """B2: a config that does not parse reports the parser's line:column reason."""
    path = tmp_path / "bad.config"
    path.write_text('model_config_list {\n  config {\n    nme: "m"\n  }\n}\n')
    with pytest.raises(cfg.ConfigParseError) as error:
        cfg.read_model_server_config(str(path))
    assert error.value.parser_message.startswith(
        "Error parsing text-format tensorflow.serving.ModelServerConfig: 3:"
    )
    assert "nme" in error.value.parser_message
    assert error.value.message == f"Invalid protobuf file: '{path}'"


def test_monitoring_config_parses(tmp_path: Path) -> None:
    """B21: --monitoring_config_file is a MonitoringConfig text proto."""
    path = tmp_path / "monitoring.config"
    path.write_text('prometheus_config { enable: true path: "/metrics" }\n')
    parsed = cfg.read_monitoring_config(str(path))
    assert (parsed.prometheus_config.enable, parsed.prometheus_config.path) == (True, "/metrics")


def test_grpc_channel_arguments_and_message_truncation() -> None:
    """B1: --grpc_channel_arguments is comma-separated key=value; long gRPC messages are truncated."""
    from tfs_devserver.grpc_service import channel_arguments, grpc_message

    assert channel_arguments("grpc.max_connection_age_ms=1000, grpc.primary_user_agent=x,") == [
        ("grpc.max_connection_age_ms", 1000),
        ("grpc.primary_user_agent", "x"),
    ]
    assert grpc_message(ServingError(Code.UNKNOWN, "a" * 2000)) == "a" * 1024 + "...TRUNCATED"
