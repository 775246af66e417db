"""gRPC front end: ModelService and PredictionService on ``--port`` and ``--grpc_socket_path``.

Why thin: every rule lives in ``core``/``inference``; this module only converts protos, maps ServingError to a
gRPC status (message truncated at 1024 characters like stock ToGRPCStatus) and records request metrics.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
    status_pb2,
)

from tfs_devserver import examples, inference
from tfs_devserver.core import UNSUPPORTED_CONFIG, ServerCore
from tfs_devserver.monitoring import Metrics
from tfs_devserver.servable import DEFAULT_SIGNATURE, Servable
from tfs_devserver.status import Code, ServingError, from_exception, invalid_argument
from tfs_devserver.tensors import from_numpy, to_numpy

log = logging.getLogger("tensorflow_serving.model_servers.grpc")

_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
_MESSAGE_LIMIT = 1024
_MAX_MESSAGE = 2**31 - 1  # stock: builder.SetMaxMessageSize(kint32max)
R = TypeVar("R", bound=Message)


def grpc_message(error: ServingError) -> str:
    """ToGRPCStatus's message: truncated at 1024 characters."""
    if len(error.message) > _MESSAGE_LIMIT:
        return error.message[:_MESSAGE_LIMIT] + "...TRUNCATED"
    return error.message


def abort(context: grpc.ServicerContext, error: ServingError) -> None:
    """End the RPC with the error's code and message (raises)."""
    context.abort(_GRPC_CODES[int(error.code)], grpc_message(error))


def fill_spec(spec: model_pb2.ModelSpec, servable: Servable, signature_name: str | None) -> None:
    """The response model_spec: the version that actually served (B16)."""
    spec.name = servable.name
    spec.version.value = servable.version
    if signature_name is not None:
        spec.signature_name = signature_name or DEFAULT_SIGNATURE


class _Handler:
    """Shared error handling and metrics for the inference RPCs."""

    def __init__(self, core: ServerCore, metrics: Metrics) -> None:
        self.core = core
        self.metrics = metrics

    def serve(
        self,
        context: grpc.ServicerContext,
        api: str,
        spec: model_pb2.ModelSpec,
        work: Callable[[Servable], R],
    ) -> R:
        started = time.perf_counter()
        version: int | None = None
        code = Code.OK
        try:
            with self.core.servable(spec) as servable:
                version = servable.version
                return work(servable)
        except Exception as exc:
            error = from_exception(exc)
            code = error.code
            abort(context, error)
            raise  # unreachable: abort raises
        finally:
            self.metrics.record_request(spec.name, version, api, "GRPC", code, time.perf_counter() - started)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    """Predict, Classify, Regress, MultiInference and GetModelMetadata."""

    def __init__(self, core: ServerCore, metrics: Metrics) -> None:
        self._handler = _Handler(core, metrics)

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def work(servable: Servable) -> predict_pb2.PredictResponse:
            inputs = {k: to_numpy(v) for k, v in request.inputs.items()}
            signature = request.model_spec.signature_name
            outputs = inference.predict(servable, signature, inputs, list(request.output_filter))
            response = predict_pb2.PredictResponse()
            fill_spec(response.model_spec, servable, signature)
            for alias, value in outputs.items():
                response.outputs[alias].CopyFrom(from_numpy(value))
            return response

        return self._handler.serve(context, "predict", request.model_spec, work)

    def Classify(  # noqa: N802
        self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext
    ) -> Any:
        def work(servable: Servable) -> classification_pb2.ClassificationResponse:
            signature = request.model_spec.signature_name
            response = classification_pb2.ClassificationResponse()
            response.result.CopyFrom(examples.classify(servable, signature, request.input))
            fill_spec(response.model_spec, servable, signature)
            return response

        return self._handler.serve(context, "classify", request.model_spec, work)

    def Regress(self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def work(servable: Servable) -> regression_pb2.RegressionResponse:
            signature = request.model_spec.signature_name
            response = regression_pb2.RegressionResponse()
            response.result.CopyFrom(examples.regress(servable, signature, request.input))
            fill_spec(response.model_spec, servable, signature)
            return response

        return self._handler.serve(context, "regress", request.model_spec, work)

    def MultiInference(  # noqa: N802
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> Any:
        if not request.tasks:
            abort(context, invalid_argument("Expected at least one task"))
        spec = request.tasks[0].model_spec

        def work(servable: Servable) -> inference_pb2.MultiInferenceResponse:
            return examples.multi_inference(servable, request)

        return self._handler.serve(context, "MultiInference", spec, work)

    def GetModelMetadata(  # noqa: N802
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> Any:
        try:
            check_metadata_request(request)
        except ServingError as error:
            abort(context, error)
        return self._handler.serve(context, "GetModelMetadata", request.model_spec, metadata_response)


def check_metadata_request(request: get_model_metadata_pb2.GetModelMetadataRequest) -> None:
    """The stock GetModelMetadata argument checks."""
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    if not request.metadata_field:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != "signature_def":
            raise invalid_argument(f"Metadata field {field} is not supported")


def metadata_response(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadataResponse with the SignatureDefMap packed under ``signature_def``."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    fill_spec(response.model_spec, servable, None)
    response.metadata["signature_def"].Pack(servable.signature_def_map())
    return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    """GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, core: ServerCore) -> None:
        self._core = core

    def GetModelStatus(  # noqa: N802
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> Any:
        try:
            return self._core.model_status(request)
        except ServingError as error:
            abort(context, error)

    def HandleReloadConfigRequest(  # noqa: N802
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> Any:
        config = request.config
        try:
            if config.WhichOneof("config") != "model_config_list":
                raise invalid_argument(UNSUPPORTED_CONFIG)
            for index, model in enumerate(config.model_config_list.config):
                log.info(
                    "\nConfig entry\n\tindex : %d\n\tpath : %s\n\tname : %s\n\tplatform : %s",
                    index,
                    model.base_path,
                    model.name,
                    model.model_platform,
                )
            self._core.reload_config(config)
        except ServingError as error:
            log.error("ReloadConfig failed: %s", error.message)
            abort(context, error)
        return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto(error_code=0))


def channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """``--grpc_channel_arguments``: comma-separated key=value pairs; integer values become ints."""
    options: list[tuple[str, int | str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        options.append((key.strip(), int(value) if value.strip().lstrip("-").isdigit() else value.strip()))
    return options


def build_server(
    core: ServerCore, metrics: Metrics, *, port: int, socket_path: str, channel_args: str, max_threads: int
) -> tuple[grpc.Server, int]:
    """A started gRPC server and its bound TCP port; UNAVAILABLE if a port cannot be bound."""
    options: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.max_send_message_length", _MAX_MESSAGE),
    ]
    options += channel_arguments(channel_args)
    server = grpc.server(ThreadPoolExecutor(max_workers=max_threads or 64), options=options)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core, metrics), server
    )
    try:
        bound = server.add_insecure_port(f"0.0.0.0:{port}")
        if socket_path:
            if os.path.exists(socket_path):
                os.unlink(socket_path)  # a stale socket from an earlier process
            server.add_insecure_port(f"unix:{socket_path}")
    except RuntimeError as exc:
        raise ServingError(Code.UNAVAILABLE, f"Failed to bind gRPC server: {exc}") from exc
    if not bound:
        raise ServingError(Code.UNAVAILABLE, f"Failed to bind gRPC port {port}")
    server.start()
    return server, bound
