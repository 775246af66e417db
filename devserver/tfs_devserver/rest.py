"""REST front end on ``--rest_api_port`` (B19, B20) and the Prometheus endpoint (B21).

Why the stdlib server: the devserver's REST traffic is tests, demos and local runs; ThreadingHTTPServer serves
it without another dependency. Paths are matched case-insensitively with the stock regular expressions, errors
are ``{"error": "<message>"}`` with the stock status-code mapping, and requests run under
``--rest_api_timeout_in_ms`` (DEADLINE_EXCEEDED, 504, when it passes).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from tfs_devserver import examples, inference, rest_json
from tfs_devserver.core import ServerCore
from tfs_devserver.grpc_service import check_metadata_request, metadata_response
from tfs_devserver.monitoring import Metrics
from tfs_devserver.servable import DEFAULT_SIGNATURE, Servable
from tfs_devserver.status import Code, ServingError, from_exception, invalid_argument

log = logging.getLogger("tensorflow_serving.model_servers.http_server")

_MODEL = r"/v1/models(?:/(?P<name>[^/:]+))?(?:/versions/(?P<version>-?\d+)|/labels/(?P<label>[^/:]+))?"
STATUS_PATH = re.compile(_MODEL + r"(?P<metadata>/metadata)?/?", re.IGNORECASE)
ACTION_PATH = re.compile(_MODEL + r":(?P<action>classify|regress|predict)", re.IGNORECASE)

HTTP_CODES = {
    Code.OK: 200,
    Code.INVALID_ARGUMENT: 400,
    Code.FAILED_PRECONDITION: 400,
    Code.OUT_OF_RANGE: 400,
    Code.NOT_FOUND: 404,
    Code.UNAVAILABLE: 503,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.DEADLINE_EXCEEDED: 504,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.UNAUTHENTICATED: 401,
    Code.UNIMPLEMENTED: 501,
    Code.ABORTED: 409,
    Code.CANCELLED: 499,
}


def http_code(code: Code) -> int:
    """B20: the HTTP status for a TF status code (UNKNOWN, INTERNAL, DATA_LOSS and the rest: 500)."""
    return HTTP_CODES.get(code, 500)


def model_spec(match: re.Match[str]) -> model_pb2.ModelSpec:
    """The ModelSpec a matched path names."""
    name = match.group("name")
    if not name:
        raise invalid_argument("Missing model name in request.")
    spec = model_pb2.ModelSpec(name=name)
    if match.group("version") is not None:
        spec.version.value = int(match.group("version"))
    elif match.group("label") is not None:
        spec.version_label = match.group("label")
    return spec


class RestApi:
    """The request logic, separate from the HTTP plumbing."""

    def __init__(self, core: ServerCore, metrics: Metrics, timeout_ms: int, monitoring_path: str | None):
        self.core = core
        self.metrics = metrics
        self.timeout = timeout_ms / 1000 if timeout_ms > 0 else None
        self.monitoring_path = monitoring_path
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="rest")

    def get(self, path: str) -> tuple[int, str, str]:
        """(HTTP code, content type, body) for a GET."""
        if self.monitoring_path is not None and path == self.monitoring_path:
            return 200, "text/plain; version=0.0.4", self.metrics.render()
        match = STATUS_PATH.fullmatch(path)
        if match is None:
            return self._malformed("GET", path)
        return self._json(lambda: self._status_or_metadata(match))

    def post(self, path: str, body: bytes) -> tuple[int, str, str]:
        """(HTTP code, content type, body) for a POST."""
        match = ACTION_PATH.fullmatch(path)
        if match is None:
            return self._malformed("POST", path)
        return self._json(lambda: self._action(match, body))

    def _malformed(self, method: str, path: str) -> tuple[int, str, str]:
        if not path.lower().startswith("/v1/"):
            return 404, "application/json", json.dumps({"error": f"Not found: {method} {path}"})
        return self._error(invalid_argument(f"Malformed request: {method} {path}"))

    def _error(self, error: ServingError) -> tuple[int, str, str]:
        return http_code(error.code), "application/json", json.dumps({"error": error.message})

    def _json(self, work: Callable[[], Any]) -> tuple[int, str, str]:
        future = self._pool.submit(work)
        try:
            result = future.result(timeout=self.timeout)
        except FutureTimeout:
            return self._error(ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded"))
        except Exception as exc:
            return self._error(from_exception(exc))
        return 200, "application/json", json.dumps(result, indent=1)

    def _status_or_metadata(self, match: re.Match[str]) -> Any:
        spec = model_spec(match)
        if match.group("metadata"):
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=spec, metadata_field=["signature_def"]
            )
            check_metadata_request(request)
            with self.core.servable(spec) as servable:
                response = metadata_response(servable)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signature_map)
            return {
                "model_spec": rest_json.proto_json(response.model_spec),
                "metadata": {"signature_def": rest_json.proto_json(signature_map)},
            }
        status = self.core.model_status(get_model_status_pb2.GetModelStatusRequest(model_spec=spec))
        return rest_json.proto_json(status)

    def _action(self, match: re.Match[str], raw: bytes) -> Any:
        spec = model_spec(match)
        action = match.group("action").lower()
        body = parse_body(raw)
        signature_name = body.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise invalid_argument("'signature_name' must be a string")
        started, version, code = time.perf_counter(), None, Code.OK
        try:
            with self.core.servable(spec) as servable:
                version = servable.version
                return self._run(action, servable, signature_name, body)
        except Exception as exc:
            code = from_exception(exc).code
            raise
        finally:
            self.metrics.record_request(
                spec.name, version, action, "REST", code, time.perf_counter() - started
            )

    def _run(self, action: str, servable: Servable, signature_name: str, body: dict[str, Any]) -> Any:
        if action == "predict":
            try:
                signature = servable.signature(signature_name)
            except ServingError:
                shown = signature_name or DEFAULT_SIGNATURE
                raise invalid_argument(
                    f'Serving signature name: "{shown}" not found in signature def'
                ) from None
            inputs, row = rest_json.request_inputs(body, signature)
            outputs = inference.predict(servable, signature_name, inputs)
            return rest_json.predict_response(outputs, row)
        request_input = rest_json.examples_input(body)
        if action == "classify":
            result = examples.classify(servable, signature_name, request_input)
            return {"result": [[[c.label, c.score] for c in row.classes] for row in result.classifications]}
        regression = examples.regress(servable, signature_name, request_input)
        return {"result": [r.value for r in regression.regressions]}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON request body; INVALID_ARGUMENT when it is not a JSON object."""
    try:
        body = json.loads(raw.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_argument(f"JSON Parse error: {exc}") from exc
    if not isinstance(body, dict):
        raise invalid_argument("JSON Parse error: the request body must be a JSON object")
    return body


def _handler_class(api: RestApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tfs-devserver"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def _send(self, result: tuple[int, str, str]) -> None:
            code, content_type, text = result
            data = text.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(api.get(self.path.split("?", 1)[0]))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._send(api.post(self.path.split("?", 1)[0], self.rfile.read(length)))

    return Handler


def start_rest_server(
    core: ServerCore, metrics: Metrics, *, port: int, timeout_ms: int, monitoring_path: str | None
) -> ThreadingHTTPServer:
    """Bind and serve in a background thread; UNAVAILABLE if the port cannot be bound."""
    api = RestApi(core, metrics, timeout_ms, monitoring_path)
    try:
        server = ThreadingHTTPServer(("0.0.0.0", port), _handler_class(api))
    except OSError as exc:
        raise ServingError(Code.UNAVAILABLE, f"Failed to bind REST port {port}: {exc}") from exc
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="rest", daemon=True).start()
    return server
