"""The gRPC client's own rules, against a scripted in-process gRPC server (no TF Serving, no patching).

B8: the config file is written before ReloadConfig. B12: incomplete versions are never sent; a new model
whose load fails (UNKNOWN) is a LoadFailedError. B15: NOT_FOUND status means "never seen". Every gRPC error
maps to the agent's exception types in one place.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from agent.adapters.tfserving import config_text, protos
from agent.adapters.tfserving.client import GrpcServingControl, serving_error
from agent.adapters.tfserving.config_file import (
    check_complete,
    initial_config,
    read_config,
    write_config_file,
)
from agent.adapters.tfserving.protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    predict_pb2,
    types_pb2,
)
from agent.adapters.tfserving.tensors import from_proto, to_proto
from agent.core.domain import ServedModel, VersionState, VersionStatus
from agent.core.errors import (
    ConfigError,
    LoadFailedError,
    ServingDeadlineError,
    ServingRejectedError,
    ServingUnavailableError,
)

Handler = Callable[[Any, grpc.ServicerContext], Any]


class Scripted(
    protos.model_service_pb2_grpc.ModelServiceServicer,  # type: ignore[misc]  # generated, untyped
    protos.prediction_service_pb2_grpc.PredictionServiceServicer,  # type: ignore[misc]
):
    """The ModelService and PredictionService methods the agent calls, answered by handlers set per test;
    every request is recorded."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.requests: list[tuple[str, Any]] = []
        self.on_reload: Callable[[], None] = lambda: None

    def _run(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append((method, request))
        return self.handlers[method](request, context)

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.on_reload()
        return self._run("reload", request, context)

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._run("status", request, context)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._run("metadata", request, context)

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._run("predict", request, context)


def fails(code: grpc.StatusCode, details: str) -> Handler:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, details)

    return handler


@pytest.fixture
def server() -> Iterator[tuple[Scripted, str]]:
    scripted = Scripted()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    protos.model_service_pb2_grpc.add_ModelServiceServicer_to_server(scripted, srv)
    protos.prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(scripted, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield scripted, f"127.0.0.1:{port}"
    srv.stop(grace=None)


def version_dir(base: Path, version: int) -> Path:
    path = base / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    return path


@pytest.fixture
def client(server: tuple[Scripted, str], tmp_path: Path) -> Iterator[GrpcServingControl]:
    with GrpcServingControl(
        server[1], tmp_path / "models.config", rpc_timeout=5, reload_timeout=5
    ) as control:
        yield control


@pytest.mark.parametrize(
    ("code", "reload", "error"),
    [
        (grpc.StatusCode.UNAVAILABLE, False, ServingUnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, True, ServingDeadlineError),
        (grpc.StatusCode.INVALID_ARGUMENT, True, ServingRejectedError),
        (grpc.StatusCode.FAILED_PRECONDITION, True, ServingRejectedError),
        (grpc.StatusCode.NOT_FOUND, False, ServingRejectedError),
        (grpc.StatusCode.UNKNOWN, True, LoadFailedError),
        (grpc.StatusCode.UNKNOWN, False, ServingRejectedError),
    ],
)
def test_error_mapping(code: grpc.StatusCode, reload: bool, error: type[Exception]) -> None:
    """Each gRPC code maps to one agent error with TF Serving's message; UNKNOWN on reload = load failure."""
    mapped = serving_error(code, "TF Serving says no", "ReloadConfig", reload=reload)
    assert type(mapped) is error
    assert str(mapped) == f"ReloadConfig: {code.name}: TF Serving says no"


def test_check_complete_refuses_what_tf_serving_would_hang_on(tmp_path: Path) -> None:
    """B12: a listed version needs <base>/<N>/saved_model.pb; the base path must be local and absolute."""
    version_dir(tmp_path, 1)
    check_complete(ServedModel("m", str(tmp_path), (1,), (("stable", 1),)))
    (tmp_path / "2").mkdir()
    cases = [
        (ServedModel("m", str(tmp_path), (1, 2)), "2 is not a complete SavedModel"),
        (ServedModel("m", "gs://bucket/m", (1,)), "not a local absolute path"),
        (ServedModel("m", "models/m", (1,)), "not a local absolute path"),
        (ServedModel("m", str(tmp_path), ()), "lists no version"),
        (ServedModel("m", str(tmp_path), (1,), (("stable", 3),)), "labels point at unlisted versions"),
    ]
    for model, message in cases:
        with pytest.raises(ServingRejectedError, match=message):
            check_complete(model)


def test_initial_config_and_read_back(tmp_path: Path) -> None:
    """The start-up config is written without a server; an absent file reads as no models."""
    path = tmp_path / "models.config"
    assert read_config(path) == {}
    initial_config(path)
    assert path.read_text() == config_text.render([])
    version_dir(tmp_path / "m", 3)
    initial_config(path, [ServedModel("m", str(tmp_path / "m"), (3,))])
    assert read_config(path) == {"m": ServedModel("m", str(tmp_path / "m"), (3,))}


def test_apply_writes_the_file_before_reload(
    server: tuple[Scripted, str], client: GrpcServingControl, tmp_path: Path
) -> None:
    """B8: when ReloadConfig arrives, the file on disk already says exactly what is being sent."""
    scripted, _ = server
    model = ServedModel("m", str(tmp_path / "m"), (1,))
    version_dir(tmp_path / "m", 1)
    on_disk: list[str] = []
    scripted.on_reload = lambda: on_disk.append(client.config_file.read_text())
    scripted.handlers["reload"] = lambda req, ctx: model_management_pb2.ReloadConfigResponse()
    client.apply({"m": model})
    sent = scripted.requests[-1][1].config
    assert on_disk == [config_text.render([model])]
    assert sent == config_text.to_proto([model])
    assert client.configured() == {"m": model}


def test_incomplete_version_is_never_sent(
    server: tuple[Scripted, str], client: GrpcServingControl, tmp_path: Path
) -> None:
    """B12: a version without saved_model.pb is refused before the file or TF Serving sees it."""
    with pytest.raises(ServingRejectedError, match="not a complete SavedModel"):
        client.apply({"m": ServedModel("m", str(tmp_path / "m"), (1,))})
    assert server[0].requests == []
    assert not client.config_file.exists()


def test_merge_keeps_other_models(
    server: tuple[Scripted, str], client: GrpcServingControl, tmp_path: Path
) -> None:
    """Every reload carries every managed model; None removes one (ReloadConfig replaces the list, B11)."""
    scripted, _ = server
    scripted.handlers["reload"] = lambda req, ctx: model_management_pb2.ReloadConfigResponse()
    a, b = (ServedModel(n, str(tmp_path / n), (1,)) for n in "ab")
    version_dir(tmp_path / "a", 1)
    version_dir(tmp_path / "b", 1)
    client.apply({"a": a})
    client.apply({"b": b})
    assert [c.name for c in scripted.requests[-1][1].config.model_config_list.config] == ["a", "b"]
    client.apply({"a": None})
    assert read_config(client.config_file) == {"b": b}


def test_rejected_reload_restores_the_file(
    server: tuple[Scripted, str], client: GrpcServingControl, tmp_path: Path
) -> None:
    """A config TF Serving refuses (B13) is taken out of the file again, so its poller won't retry it (B8)."""
    scripted, _ = server
    version_dir(tmp_path / "m", 1)
    version_dir(tmp_path / "m", 2)
    scripted.handlers["reload"] = lambda req, ctx: model_management_pb2.ReloadConfigResponse()
    first = ServedModel("m", str(tmp_path / "m"), (1,))
    client.apply({"m": first})
    message = (
        "Request to assign label to version 2 of model m, which is not currently available for inference"
    )
    scripted.handlers["reload"] = fails(grpc.StatusCode.FAILED_PRECONDITION, message)
    with pytest.raises(ServingRejectedError, match="FAILED_PRECONDITION: Request to assign label"):
        client.apply({"m": ServedModel("m", str(tmp_path / "m"), (1, 2), (("stable", 2),))})
    assert read_config(client.config_file) == {"m": first}
    assert client.configured() == {"m": first}


def test_failed_new_model_is_a_load_failure_and_stays_configured(
    server: tuple[Scripted, str], client: GrpcServingControl, tmp_path: Path
) -> None:
    """B12: UNKNOWN "did not become available" is LoadFailedError; TF Serving keeps the config, so do we."""
    version_dir(tmp_path / "m", 1)
    message = "1 model(s) did not become available: {{name: m version: 1} due to error: DATA_LOSS: bad, }"
    server[0].handlers["reload"] = fails(grpc.StatusCode.UNKNOWN, message)
    with pytest.raises(LoadFailedError, match="DATA_LOSS: bad"):
        client.apply({"m": ServedModel("m", str(tmp_path / "m"), (1,))})
    assert "m" in read_config(client.config_file)


def test_unreachable_server_keeps_the_file(tmp_path: Path) -> None:
    """UNAVAILABLE: the file already holds the new config, which TF Serving reads when it comes back (B8)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    version_dir(tmp_path / "m", 1)
    model = ServedModel("m", str(tmp_path / "m"), (1,))
    with GrpcServingControl(f"127.0.0.1:{port}", tmp_path / "models.config", rpc_timeout=2) as control:
        with pytest.raises(ServingUnavailableError):
            control.apply({"m": model})
        with pytest.raises(ServingUnavailableError):
            control.status("m")
    assert read_config(tmp_path / "models.config") == {"m": model}


def test_status_rows_and_never_seen(server: tuple[Scripted, str], client: GrpcServingControl) -> None:
    """B14/B15: states and error text map to VersionStatus, sorted descending; NOT_FOUND is an empty list."""
    scripted, _ = server

    def answer(request: Any, context: Any) -> Any:
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.add(version=1, state=30)
        failed = response.model_version_status.add(version=2, state=50)
        failed.status.error_code = 15
        failed.status.error_message = "Can't parse saved_model.pb"
        return response

    scripted.handlers["status"] = answer
    assert client.status("m") == (
        VersionStatus(2, VersionState.END, "DATA_LOSS: Can't parse saved_model.pb"),
        VersionStatus(1, VersionState.AVAILABLE),
    )
    scripted.handlers["status"] = fails(grpc.StatusCode.NOT_FOUND, "Could not find any versions of model x")
    assert client.status("x") == ()


def metadata_handler(request: Any, context: Any) -> Any:
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    defs = get_model_metadata_pb2.SignatureDefMap()
    sig = defs.signature_def["serving_default"]
    sig.inputs["x"].dtype = types_pb2.DT_FLOAT
    sig.inputs["x"].tensor_shape.dim.add(size=-1)
    sig.outputs["y"].dtype = types_pb2.DT_FLOAT
    response.metadata["signature_def"].Pack(defs)
    return response


def test_predict_casts_to_the_signature(server: tuple[Scripted, str], client: GrpcServingControl) -> None:
    """Inputs are cast to the signature's dtype; metadata is fetched once per (name, version)."""
    scripted, _ = server
    scripted.handlers["metadata"] = metadata_handler

    def predict(request: Any, context: Any) -> Any:
        x = from_proto(request.inputs["x"])
        response = predict_pb2.PredictResponse()
        response.outputs["y"].CopyFrom(to_proto(x * 0.5 + 2))
        return response

    scripted.handlers["predict"] = predict
    for _ in range(2):
        out = client.predict("m", {"x": np.array([1.0, 2.0])}, version=3)
        assert out["y"].dtype == np.float32
        assert out["y"].tolist() == [2.5, 3.0]
    methods = [m for m, _ in scripted.requests]
    assert methods == ["metadata", "predict", "predict"]
    assert scripted.requests[1][1].model_spec.version.value == 3
    assert client.signature("m", version=3).inputs["x"].shape == (None,)


def test_predict_by_label_and_missing_signature(
    server: tuple[Scripted, str], client: GrpcServingControl
) -> None:
    """A label goes into model_spec.version_label (B16); an unknown signature name is a rejection."""
    scripted, _ = server
    scripted.handlers["metadata"] = metadata_handler
    scripted.handlers["predict"] = fails(
        grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: x"
    )
    with pytest.raises(ServingRejectedError, match="Unrecognized servable version label"):
        client.predict("m", {"x": np.zeros(1)}, label="x")
    assert scripted.requests[-1][1].model_spec.version_label == "x"
    with pytest.raises(ServingRejectedError, match="has no signature 'other'"):
        client.predict("m", {"x": np.zeros(1)}, signature_name="other")


def test_corrupt_config_file_is_a_config_error(tmp_path: Path) -> None:
    """A config file the agent cannot read back is a ConfigError naming the file, at first use."""
    path = tmp_path / "models.config"
    path.write_text("model_config_list {")
    with (
        GrpcServingControl("127.0.0.1:1", path) as control,
        pytest.raises(ConfigError, match=r"models\.config"),
    ):
        control.configured()


def test_config_is_read_at_first_use(tmp_path: Path) -> None:
    """The start-up config written after the client was built is what the client merges into."""
    path = tmp_path / "models.config"
    version_dir(tmp_path / "m", 1)
    with GrpcServingControl("127.0.0.1:1", path) as control:
        write_config_file(path, [ServedModel("m", str(tmp_path / "m"), (1,))])
        assert control.configured() == {"m": ServedModel("m", str(tmp_path / "m"), (1,))}


def test_reset_writes_the_start_up_config_without_rpc(
    server: tuple[Scripted, str], client: GrpcServingControl, tmp_path: Path
) -> None:
    """reset writes the start-up file (B2: TF Serving may not run yet), sends nothing, and becomes current."""
    version_dir(tmp_path / "m", 2)
    model = ServedModel("m", str(tmp_path / "m"), (2,))
    client.reset([model])
    assert server[0].requests == []
    assert read_config(client.config_file) == {"m": model}
    assert client.configured() == {"m": model}
    with pytest.raises(ServingRejectedError, match="not a complete SavedModel"):
        client.reset([ServedModel("n", str(tmp_path / "n"), (1,))])
