"""Launch a model server as a real process for tests: the devserver, or the stock binary from ``TFS_BINARY``.

Why a real process: start-up rules, exit codes, ports and logs are part of the behaviour under test (B1, B2),
and the same tests run unchanged against a stock ``tensorflow_model_server`` wherever one exists
(``TFS_BINARY=/path/to/tensorflow_model_server``). Tests of behaviour the stock binary does not share carry
``@pytest.mark.devserver_only``; call ``skip_devserver_only(items)`` from ``pytest_collection_modifyitems``.

Never sleep to wait: ``testkit.poll.poll_until`` polls a condition with a deadline. Typical use::

    with start_server(tmp_path, model_name="m", model_base_path=base) as server:
        server.wait_for_state("m", 1, "AVAILABLE")
        values, version = server.predict("m", [1.0, 2.0])

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from testkit.poll import poll_until
from testkit.ports import PortInUse, free_port, is_bind_failure, port_open, retry_on_bind_failure

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 120.0  # a cold TensorFlow import on a loaded 2-core CI machine can take tens of seconds
PROMETHEUS_CONFIG = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'
STATE_NAMES = {0: "UNKNOWN", 10: "START", 20: "LOADING", 30: "AVAILABLE", 40: "UNLOADING", 50: "END"}


# ---- markers -------------------------------------------------------------------------------------------
def using_stock_binary() -> bool:
    """True when ``TFS_BINARY`` points the suite at a stock tensorflow_model_server."""
    return bool(os.environ.get("TFS_BINARY"))


def skip_devserver_only(items: Iterable[pytest.Item]) -> None:
    """Skip tests marked ``devserver_only`` when running against the stock binary."""
    if not using_stock_binary():
        return
    skip = pytest.mark.skip(reason="devserver_only: TFS_BINARY is set (stock binary under test)")
    for item in items:
        if item.get_closest_marker("devserver_only") is not None:
            item.add_marker(skip)


# ---- processes -------------------------------------------------------------------------------------------
def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if the process has not exited after ``timeout`` seconds; reaped either way."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---- config text ---------------------------------------------------------------------------------------
def model_config(
    name: str,
    base_path: Path | str,
    *,
    versions: Sequence[int] | None = None,
    latest: int | None = None,
    all_versions: bool = False,
    labels: dict[str, int] | None = None,
    platform: str = "tensorflow",
) -> str:
    """One ``config { ... }`` entry of a ModelConfigList in text format."""
    lines = [f'name: "{name}"', f'base_path: "{base_path}"']
    if platform:
        lines.append(f'model_platform: "{platform}"')
    if versions is not None:
        lines.append(
            "model_version_policy { specific { " + " ".join(f"versions: {v}" for v in versions) + " } }"
        )
    elif latest is not None:
        lines.append(f"model_version_policy {{ latest {{ num_versions: {latest} }} }}")
    elif all_versions:
        lines.append("model_version_policy { all {} }")
    for label, version in (labels or {}).items():
        lines.append(f'version_labels {{ key: "{label}" value: {version} }}')
    return "config {\n  " + "\n  ".join(lines) + "\n}\n"


def model_config_list(*entries: str) -> str:
    """A whole ModelServerConfig text from ``model_config`` entries (none = the valid empty list)."""
    return "model_config_list {\n" + "".join(entries) + "}\n"


def parse_server_config(text: str) -> Any:
    """A ModelServerConfig proto from text."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


# ---- the handle ----------------------------------------------------------------------------------------
@dataclass
class ServerHandle:
    """A running (or exited) server process and clients for it."""

    process: subprocess.Popen[bytes]
    grpc_port: int
    rest_port: int | None
    workdir: Path
    command: list[str]
    _channel: Any = field(default=None, repr=False)

    # -- process
    @property
    def grpc_address(self) -> str:
        """``localhost:<port>`` for gRPC clients."""
        return f"localhost:{self.grpc_port}"

    @property
    def rest_url(self) -> str | None:
        """``http://localhost:<port>``, or None when REST is off."""
        return None if self.rest_port is None else f"http://localhost:{self.rest_port}"

    def stdout_text(self) -> str:
        """Everything the server printed on stdout so far."""
        return (self.workdir / "stdout.txt").read_text(errors="replace")

    def stderr_text(self) -> str:
        """Everything the server logged on stderr so far."""
        return (self.workdir / "stderr.txt").read_text(errors="replace")

    def output_text(self) -> str:
        """stdout then stderr (the stock binary prints some errors on stdout, logs on stderr)."""
        return self.stdout_text() + self.stderr_text()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> ServerHandle:
        """Wait until the gRPC (and REST) ports accept connections; fails early if the process exits."""

        def ready() -> bool:
            if self.process.poll() is not None:
                output = self.output_text()[-4000:]
                if is_bind_failure(output):
                    raise PortInUse(f"{self.command[0]} could not bind its port:\n{output}")
                raise AssertionError(f"server exited with {self.process.returncode}:\n{output}")
            return port_open(self.grpc_port) and (self.rest_port is None or port_open(self.rest_port))

        poll_until(ready, timeout=timeout, interval=0.05, what="server ports to open")
        return self

    def wait_exit(self, timeout: float = READY_TIMEOUT) -> int:
        """Wait for the process to exit by itself; returns its exit code."""
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; closes the gRPC channel."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- gRPC clients
    def channel(self) -> Any:
        """A shared insecure gRPC channel to the server (closed by ``stop``)."""
        import grpc

        if self._channel is None:
            self._channel = grpc.insecure_channel(self.grpc_address)
        return self._channel

    def model_stub(self) -> Any:
        """ModelServiceStub (GetModelStatus, HandleReloadConfigRequest)."""
        from tensorflow_serving.apis import model_service_pb2_grpc

        return model_service_pb2_grpc.ModelServiceStub(self.channel())

    def prediction_stub(self) -> Any:
        """PredictionServiceStub (Predict, Classify, Regress, GetModelMetadata)."""
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        return prediction_service_pb2_grpc.PredictionServiceStub(self.channel())

    def status(self, name: str, timeout: float = 10.0) -> dict[int, tuple[str, int, str]]:
        """GetModelStatus: version -> (state name, error code, error message); {} if the model is unknown."""
        import grpc
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        try:
            response = self.model_stub().GetModelStatus(request, timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise
        return {
            s.version: (STATE_NAMES.get(s.state, str(s.state)), s.status.error_code, s.status.error_message)
            for s in response.model_version_status
        }

    def wait_for_state(
        self, name: str, version: int, state: str, timeout: float = 60.0
    ) -> tuple[str, int, str]:
        """Poll GetModelStatus until ``version`` of ``name`` is in ``state`` (e.g. ``AVAILABLE``, ``END``)."""

        def reached() -> tuple[str, int, str] | None:
            entry = self.status(name).get(version)
            return entry if entry is not None and entry[0] == state else None

        return poll_until(reached, timeout=timeout, what=f"{name} v{version} {state}")

    def reload(self, config_text: str, timeout: float | None = 60.0) -> Any:
        """HandleReloadConfigRequest with ModelServerConfig text; raises grpc.RpcError on failure."""
        from tensorflow_serving.apis import model_management_pb2

        request = model_management_pb2.ReloadConfigRequest(config=parse_server_config(config_text))
        return self.model_stub().HandleReloadConfigRequest(request, timeout=timeout)

    def predict(
        self,
        name: str,
        x: Sequence[float],
        *,
        version: int | None = None,
        label: str | None = None,
        signature_name: str = "",
        extra_inputs: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> tuple[list[float], int]:
        """Predict ``y`` for float32 ``x``; returns (values, version that served)."""
        request = predict_request(name, x, version=version, label=label, signature_name=signature_name)
        from tfs_devserver.tensors import from_numpy

        for alias, value in (extra_inputs or {}).items():
            request.inputs[alias].CopyFrom(from_numpy(value))
        response = self.prediction_stub().Predict(request, timeout=timeout)
        return list(response.outputs["y"].float_val), response.model_spec.version.value

    # -- REST
    def http(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
        """(HTTP status, parsed JSON body) of a REST call; ``path`` starts with ``/``."""
        assert self.rest_url is not None, "REST is off for this server"
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(self.rest_url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, _json_or_text(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json_or_text(exc.read())


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def predict_request(
    name: str,
    x: Sequence[float],
    *,
    version: int | None = None,
    label: str | None = None,
    signature_name: str = "",
) -> Any:
    """A PredictRequest with float32 input ``x`` (the shared test models' input)."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    if signature_name:
        request.model_spec.signature_name = signature_name
    tensor = request.inputs["x"]
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add(size=len(x))
    tensor.float_val.extend(x)
    return request


# ---- launching -----------------------------------------------------------------------------------------
def server_command() -> list[str]:
    """The binary under test: ``TFS_BINARY`` (split like a shell would), else this checkout's devserver."""
    binary = os.environ.get("TFS_BINARY")
    return shlex.split(binary) if binary else [sys.executable, "-m", "tfs_devserver"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def start_server(
    tmp_path: Path,
    *,
    model_config: str | None = None,
    model_name: str | None = None,
    model_base_path: Path | str | None = None,
    extra_flags: Sequence[str] = (),
    rest: bool = True,
    monitoring: bool = False,
    poll_seconds: int | None = 1,
    wait_ready: bool = True,
    ready_timeout: float = READY_TIMEOUT,
    grpc_port: int | None = None,
) -> ServerHandle:
    """Start a server on free loopback ports; output goes to files under ``tmp_path/server-<port>/``.

    ``model_config`` is ModelServerConfig text (written to a file and passed as ``--model_config_file``);
    otherwise ``model_name``/``model_base_path`` give single-model mode. ``poll_seconds`` sets
    ``--file_system_poll_wait_seconds`` (None leaves the server default). With ``wait_ready`` the call returns
    once the ports accept connections (the stock server opens them only after the initial models load).
    ``grpc_port`` fixes ``--port``; without it the ports are free ones, tried anew if one was taken meanwhile.
    """
    flags = [f"--model_name={model_name}"] if model_name is not None else []
    flags += [f"--model_base_path={model_base_path}"] if model_base_path is not None else []
    flags += [f"--file_system_poll_wait_seconds={poll_seconds}"] if poll_seconds is not None else []
    files: dict[str, tuple[str, str]] = {}
    if model_config is not None:
        files["models.config"] = ("--model_config_file", model_config)
    if monitoring:
        files["monitoring.config"] = ("--monitoring_config_file", PROMETHEUS_CONFIG)
    launch = partial(
        _launch,
        Path(tmp_path),
        [*flags],
        files,
        [*extra_flags],
        rest=rest,
        wait_ready=wait_ready,
        timeout=ready_timeout,
    )
    return launch(grpc_port) if grpc_port is not None else retry_on_bind_failure(lambda: launch(free_port()))


def _launch(
    tmp_path: Path,
    flags: list[str],
    files: dict[str, tuple[str, str]],
    extra_flags: list[str],
    grpc_port: int,
    *,
    rest: bool,
    wait_ready: bool,
    timeout: float,
) -> ServerHandle:
    """One server process on ``grpc_port`` (and a free REST port); its files under ``server-<port>/``."""
    rest_port = free_port() if rest else None
    workdir = tmp_path / f"server-{grpc_port}"
    workdir.mkdir(parents=True)
    ports = [f"--port={grpc_port}"] + ([f"--rest_api_port={rest_port}"] if rest_port else [])
    written = [f"{flag}={_write(workdir / name, text)}" for name, (flag, text) in files.items()]
    command = [*server_command(), *ports, *flags, *written, *extra_flags]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=workdir)
    handle = ServerHandle(process, grpc_port, rest_port, workdir, command)
    if wait_ready:
        try:
            handle.wait_ready(timeout)
        except BaseException:
            handle.stop()
            raise
    return handle


@contextlib.contextmanager
def running_server(tmp_path: Path, **kwargs: Any) -> Iterator[ServerHandle]:
    """``start_server`` as a context manager that always stops the process."""
    handle = start_server(tmp_path, **kwargs)
    try:
        yield handle
    finally:
        handle.stop()
