"""Warmup records from golden inputs, so the first live requests after a swap are not the slow ones.

TF Serving replays ``<version>/assets.extra/tf_serving_warmup_requests`` (a TFRecord file of PredictionLog,
at most 1000 records) while loading, and marks the version AVAILABLE only afterwards
(docs/tfserving-behaviour.md#b22).
The agent writes one into the staged copy when the model brings none, from the golden inputs cast to the
signature read straight from ``saved_model.pb`` (TF Serving has not seen the version yet). TFRecord framing
is done by hand with google-crc32c: the agent never imports TensorFlow.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import google_crc32c
import numpy as np

from agent.adapters.tfserving.base import Signature, Tensors
from agent.adapters.tfserving.protos import predict_pb2, prediction_log_pb2, saved_model_pb2
from agent.adapters.tfserving.tensors import golden_inputs, signature_from_proto, to_proto
from agent.core.errors import GoldenFileError
from agent.core.golden import Golden
from agent.infra.files import write_atomic

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000
"""TF Serving refuses a warmup file with more records than this."""
SERVE_TAG = "serve"

_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: crc32c rotated right by 15 bits plus a constant (so CRCs of CRCs stay useful)."""
    crc: int = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def tfrecord(payload: bytes) -> bytes:
    """One TFRecord: uint64 length, masked crc32c of the length, the payload, masked crc32c of the payload."""
    length = struct.pack("<Q", len(payload))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + payload
        + struct.pack("<I", masked_crc32c(payload))
    )


def read_tfrecords(data: bytes) -> Iterator[bytes]:
    """The payloads of a TFRecord file, verifying every checksum (ValueError on corruption)."""
    pos = 0
    while pos < len(data):
        header = data[pos : pos + 12]
        if len(header) < 12:
            raise ValueError(f"truncated record header at byte {pos}")
        (length,), (length_crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
        if masked_crc32c(header[:8]) != length_crc:
            raise ValueError(f"corrupt record length at byte {pos}")
        payload = data[pos + 12 : pos + 12 + length]
        footer = data[pos + 12 + length : pos + 16 + length]
        if (
            len(payload) != length
            or len(footer) != 4
            or struct.unpack("<I", footer)[0] != masked_crc32c(payload)
        ):
            raise ValueError(f"corrupt or truncated record at byte {pos}")
        yield payload
        pos += 16 + length


def read_saved_model_signature(version_dir: Path, signature_name: str = "serving_default") -> Signature:
    """The signature as the SavedModel on disk declares it (meta graph tagged ``serve``)."""
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    except OSError as err:
        raise GoldenFileError(f"cannot read {version_dir / 'saved_model.pb'}: {err.strerror}") from err
    for graph in saved.meta_graphs:
        if SERVE_TAG in graph.meta_info_def.tags and signature_name in graph.signature_def:
            return signature_from_proto(graph.signature_def[signature_name])
    raise GoldenFileError(f"{version_dir}: no '{SERVE_TAG}' meta graph with signature {signature_name!r}")


def warmup_requests(golden: Golden, signature: Signature) -> list[predict_pb2.PredictRequest]:
    """The whole golden batch, plus its first example alone when the batch dimension is free: the two
    request shapes clients most likely send."""
    inputs = golden_inputs(golden, signature)
    batches: list[Tensors] = [inputs]
    free_batch = all(spec.shape and spec.shape[0] is None for spec in signature.inputs.values())
    if golden.batch_size > 1 and free_batch:
        batches.append({name: np.asarray(value)[:1] for name, value in inputs.items()})
    requests = []
    for batch in batches[:MAX_RECORDS]:
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = golden.signature_name
        for name, value in batch.items():
            request.inputs[name].CopyFrom(to_proto(value))
        requests.append(request)
    return requests


def write_warmup(version_dir: Path, golden: Golden) -> bool:
    """Write the warmup file into a (staged, not yet served) version unless it has one; True when written.

    Raises GoldenFileError when the golden inputs do not fit the SavedModel's signature.
    """
    target = version_dir / WARMUP_FILE
    if target.exists():
        return False
    signature = read_saved_model_signature(version_dir, golden.signature_name)
    records = b"".join(
        tfrecord(prediction_log_pb2.PredictionLog(predict_log={"request": request}).SerializeToString())
        for request in warmup_requests(golden, signature)
    )
    write_atomic(target, records)
    return True


def try_warmup(version_dir: Path, golden: Golden) -> tuple[bool, str | None]:
    """``write_warmup`` as a best effort: (written, why not). A model whose graph cannot be read fails its
    load anyway, with a better message, so no error here stops the candidate."""
    try:
        return write_warmup(version_dir, golden), None
    except Exception as err:
        return False, str(err)
