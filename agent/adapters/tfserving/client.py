"""ServingControl over gRPC, for the stock tensorflow_model_server and tfs-devserver alike.

The agent owns TF Serving's whole model config: every ``apply`` merges a change into it under one lock, checks
that each newly listed version is complete on the local volume (a missing or half-copied version would block
ReloadConfig forever: B12 of docs/tfserving-behaviour.md; the file's side is config_file.py), writes the file
atomically and only then sends ReloadConfig — with ``--model_config_file_poll_wait_seconds`` the file wins
over RPCs (B8), so both must agree. gRPC errors become the agent's own exception types in exactly one place,
``serving_error``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc

from agent.adapters.tfserving import config_text, protos
from agent.adapters.tfserving.base import Signature, Tensors
from agent.adapters.tfserving.config_file import check_complete, read_config, write_config_file
from agent.adapters.tfserving.protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    predict_pb2,
)
from agent.adapters.tfserving.tensors import cast, from_proto, signature_from_proto, to_proto
from agent.core.domain import ServedModel, VersionState, VersionStatus
from agent.core.errors import (
    LoadFailedError,
    ServingDeadlineError,
    ServingError,
    ServingRejectedError,
    ServingUnavailableError,
)
from agent.core.wedge import ReloadWatch
from agent.infra.files import write_atomic

# The server may still be starting, restarting, or shedding load: all of these are worth retrying later.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
# A model in one of these states after a ReloadConfig deadline is loading slowly, not wedged.
_IN_PROGRESS = frozenset({VersionState.START, VersionState.LOADING})
# Asked when the config is empty: any answer (NOT_FOUND included) shows GetModelStatus is alive.
_PROBE = "tfs-agent-status-probe"
log = logging.getLogger("tfs_agent.serving")
_CHANNEL_OPTIONS = (
    # Golden batches and their outputs can exceed gRPC's 4 MB default.
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
)


def serving_error(code: grpc.StatusCode, details: str, what: str, *, reload: bool = False) -> ServingError:
    """The agent's exception for a gRPC failure of ``what``, keeping TF Serving's own message."""
    message = f"{what}: {code.name}: {details}"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return ServingDeadlineError(message)
    if code in _RETRYABLE:
        return ServingUnavailableError(message)
    if reload and code is grpc.StatusCode.UNKNOWN:
        # A new model whose load failed (after all retries): "N model(s) did not become available: ..." (B12).
        return LoadFailedError(message)
    return ServingRejectedError(message)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class GrpcServingControl:
    """TF Serving through its gRPC ModelService and PredictionService (see ``ServingControl``)."""

    def __init__(
        self,
        address: str,
        config_file: Path,
        *,
        rpc_timeout: float | timedelta = 30.0,
        reload_timeout: float | timedelta = 600.0,
        channel_options: Sequence[tuple[str, Any]] = (),
        reload_watch: ReloadWatch | None = None,
    ) -> None:
        """``reload_timeout`` bounds ReloadConfig, which waits for new models to load (B12): give it at least
        the load timeout. The current config is read back from ``config_file`` on first use, so the start-up
        config may be written (write_config_file) after this object is built but before it is used.
        ``reload_watch`` counts ReloadConfig deadlines that look like a wedge (agent/core/wedge.py)."""
        self.address = address
        self.config_file = config_file
        self._rpc_timeout = _seconds(rpc_timeout)
        self._reload_timeout = _seconds(reload_timeout)
        self.reload_watch = reload_watch if reload_watch is not None else ReloadWatch()
        self._watch_lock = threading.Lock()
        self._channel = grpc.insecure_channel(address, options=[*_CHANNEL_OPTIONS, *channel_options])
        self._models = protos.model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._prediction = protos.prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._lock = threading.Lock()
        self._loaded: dict[str, ServedModel] | None = None
        self._signatures: dict[tuple[str, int, str], Signature] = {}

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcServingControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- config -------------------------------------------------------------------------------------------

    @property
    def _config(self) -> dict[str, ServedModel]:
        if self._loaded is None:
            self._loaded = read_config(self.config_file)
        return self._loaded

    def configured(self) -> Mapping[str, ServedModel]:
        with self._lock:
            return dict(self._config)

    def reset(self, models: Iterable[ServedModel]) -> None:
        """Write the start-up config (no RPC: TF Serving may not run yet, B2) and adopt it as current."""
        with self._lock:
            wanted = {m.name: m for m in models}
            write_config_file(self.config_file, wanted.values())
            self._loaded = wanted
            self._signatures.clear()

    def apply(self, changes: Mapping[str, ServedModel | None]) -> None:
        with self._lock:
            previous = self._config
            merged = _merge(previous, changes)
            for model in merged.values():
                if previous.get(model.name) != model:
                    check_complete(model)
            self._save(merged)
            self._forget_signatures(name for name in changes)
            try:
                self._reload(merged)
            except ServingRejectedError:
                # Put the file back, or TF Serving's file poller (B8) would keep retrying what it refused.
                self._save(previous)
                raise

    def _save(self, config: dict[str, ServedModel]) -> None:
        write_atomic(self.config_file, config_text.render(config.values()).encode())
        self._loaded = config

    def _reload(self, config: Mapping[str, ServedModel]) -> None:
        request = model_management_pb2.ReloadConfigRequest()
        request.config.CopyFrom(config_text.to_proto(config.values()))
        try:
            response = self._call(
                self._models.HandleReloadConfigRequest,
                request,
                "ReloadConfig",
                timeout=self._reload_timeout,
                reload=True,
            )
        except ServingDeadlineError as err:
            raise self._reload_deadline(err, config) from err
        except ServingError:
            self._clear_wedge()  # it answered (an error is an answer), or it is down: not wedged
            raise
        self._clear_wedge()
        if response is not None and response.status.error_code:
            code = grpc.StatusCode[_CODE_NAMES.get(response.status.error_code, "UNKNOWN")]
            raise serving_error(code, response.status.error_message, "ReloadConfig", reload=True)

    # ---- wedge -------------------------------------------------------------------------------------------

    def _reload_deadline(self, err: ServingDeadlineError, models: Collection[str]) -> ServingDeadlineError:
        """Count a ReloadConfig deadline as wedge-like when GetModelStatus answers and none of the models sent
        is loading: a reload waits for a new model's load, and later reloads queue behind it (B12), so a slow
        load is not a wedge. The error then says so."""
        try:
            progressing = any(_progressing(self.status(name)) for name in sorted(models) or [_PROBE])
        except ServingUnavailableError:
            progressing = True  # status does not answer either: down or restarting, not a wedge
        if progressing:
            self._clear_wedge()
            return err
        with self._watch_lock:
            became = self.reload_watch.deadline(err.reason)
            reason = self.reload_watch.reason
        if became:
            log.warning("TF Serving's ReloadConfig is wedged: %s", reason)
        return ServingDeadlineError(f"{err.reason}; {reason}") if reason else err

    def _clear_wedge(self) -> None:
        with self._watch_lock:
            was = self.reload_watch.cleared()
        if was:
            log.info("TF Serving's ReloadConfig answers again; no longer wedged")

    # ---- status -------------------------------------------------------------------------------------------

    def status(self, name: str) -> Sequence[VersionStatus]:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        try:
            response = self._call(
                self._models.GetModelStatus, request, f"GetModelStatus {name}", not_found_ok=True
            )
        except ServingDeadlineError:
            raise
        except ServingUnavailableError:
            self._clear_wedge()  # not listening: TF Serving is (re)starting, and a restart ends a wedge
            raise
        if response is None:  # B15: "Could not find any versions of model <m>" — never seen
            return ()
        rows = (_version_status(row) for row in response.model_version_status)
        return tuple(sorted(rows, key=lambda s: s.version, reverse=True))

    # ---- inference ----------------------------------------------------------------------------------------

    def signature(
        self, name: str, *, version: int | None = None, signature_name: str = "serving_default"
    ) -> Signature:
        key = (name, version, signature_name) if version is not None else None
        if key is not None and key in self._signatures:
            return self._signatures[key]
        signature = self._fetch_signature(name, version, None, signature_name)
        if key is not None:
            self._signatures[key] = signature
        return signature

    def signatures(self, name: str, *, version: int | None = None) -> Mapping[str, Signature]:
        defs = self._signature_defs(name, version, None)
        found: dict[str, Signature] = {}
        # TF2 exports carry "__saved_model_init_op" (DT_INVALID, no client can call it): not a signature.
        for key in sorted(k for k in defs.signature_def if not k.startswith("__saved_model")):
            try:
                found[key] = signature_from_proto(defs.signature_def[key])
            except ValueError as err:
                raise ServingRejectedError(f"GetModelMetadata {name}: signature {key!r}: {err}") from err
        return found

    def _signature_defs(self, name: str, version: int | None, label: str | None) -> Any:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        _set_spec(request.model_spec, name, version, label, None)
        response = self._call(self._prediction.GetModelMetadata, request, f"GetModelMetadata {name}")
        defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(defs)
        return defs

    def _fetch_signature(
        self, name: str, version: int | None, label: str | None, signature_name: str
    ) -> Signature:
        defs = self._signature_defs(name, version, label)
        if signature_name not in defs.signature_def:
            raise ServingRejectedError(
                f"{name} has no signature {signature_name!r} "
                f"(it has: {', '.join(sorted(defs.signature_def)) or 'none'})"
            )
        return signature_from_proto(defs.signature_def[signature_name])

    def predict(
        self,
        name: str,
        inputs: Tensors,
        *,
        version: int | None = None,
        label: str | None = None,
        signature_name: str = "serving_default",
    ) -> Tensors:
        if label is not None and version is None:
            signature = self._fetch_signature(name, None, label, signature_name)
        else:
            signature = self.signature(name, version=version, signature_name=signature_name)
        request = predict_pb2.PredictRequest()
        _set_spec(request.model_spec, name, version, label, signature_name)
        for key, value in inputs.items():
            spec = signature.inputs.get(key)
            try:
                request.inputs[key].CopyFrom(to_proto(cast(value, spec) if spec else value))
            except ValueError as err:
                raise ServingRejectedError(f"Predict {name}: input {key!r} cannot be sent: {err}") from err
        response = self._call(self._prediction.Predict, request, f"Predict {name}")
        return {key: from_proto(tensor) for key, tensor in response.outputs.items()}

    def _forget_signatures(self, names: Iterable[str]) -> None:
        gone = set(names)
        for key in [k for k in self._signatures if k[0] in gone]:
            del self._signatures[key]

    # ---- the one place gRPC errors are translated -------------------------------------------------------

    def _call(
        self,
        method: Callable[..., Any],
        request: Any,
        what: str,
        *,
        timeout: float | None = None,
        reload: bool = False,
        not_found_ok: bool = False,
    ) -> Any:
        try:
            return method(request, timeout=timeout if timeout is not None else self._rpc_timeout)
        except grpc.RpcError as err:
            code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
            if not_found_ok and code is grpc.StatusCode.NOT_FOUND:
                return None
            details = (err.details() if isinstance(err, grpc.Call) else None) or str(err)
            raise serving_error(code, details, what, reload=reload) from err


def _merge(
    config: Mapping[str, ServedModel], changes: Mapping[str, ServedModel | None]
) -> dict[str, ServedModel]:
    merged = dict(config)
    for name, model in changes.items():
        if model is None:
            merged.pop(name, None)
        elif model.name != name:
            raise ValueError(f"change for {name!r} carries a model named {model.name!r}")
        else:
            merged[name] = model
    return merged


def _set_spec(
    spec: Any, name: str, version: int | None, label: str | None, signature_name: str | None
) -> None:
    spec.name = name
    if version is not None:
        spec.version.value = version
    elif label is not None:
        spec.version_label = label
    if signature_name is not None:
        spec.signature_name = signature_name


def _progressing(rows: Sequence[VersionStatus]) -> bool:
    return any(r.state in _IN_PROGRESS for r in rows)


def _version_status(row: Any) -> VersionStatus:
    try:
        state = VersionState(row.state)
    except ValueError:
        state = VersionState.UNKNOWN
    code = row.status.error_code
    error = f"{_CODE_NAMES.get(code, str(code))}: {row.status.error_message}" if code else ""
    return VersionStatus(int(row.version), state, error)
