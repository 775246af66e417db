"""Warmup records (B22): TFRecord framing by hand, PredictionLogs from golden inputs, written once.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from agent.adapters.tfserving.protos import prediction_log_pb2, saved_model_pb2, types_pb2
from agent.adapters.tfserving.tensors import from_proto
from agent.core.errors import GoldenFileError
from agent.core.golden import parse_golden
from agent.pipeline import warmup

GOLDEN = parse_golden(json.dumps({"instances": [1.0, 2.0, 5.0], "expected": [2.5, 3.0, 4.5]}))


def write_saved_model(version_dir: Path, *, batch: int = -1, tags: tuple[str, ...] = ("serve",)) -> None:
    """A saved_model.pb with only what the agent reads: tags and a float32 [batch] -> [batch] signature."""
    saved = saved_model_pb2.SavedModel()
    graph = saved.meta_graphs.add()
    graph.meta_info_def.tags.extend(tags)
    sig = graph.signature_def["serving_default"]
    for tensor in (sig.inputs["x"], sig.outputs["y"]):
        tensor.dtype = types_pb2.DT_FLOAT
        tensor.tensor_shape.dim.add(size=batch)
    version_dir.mkdir(parents=True)
    (version_dir / "saved_model.pb").write_bytes(saved.SerializeToString())


def test_tfrecord_framing_matches_the_format() -> None:
    """Length (uint64 LE), masked crc32c of it, payload, masked crc32c of the payload — TF's known vector."""
    record = warmup.tfrecord(b"abc")
    assert record[:8] == struct.pack("<Q", 3)
    # Bytes written by tf.io.TFRecordWriter for b"abc".
    assert record.hex() == "0300000000000000" + "b099490e" + "616263" + "6e57f121"
    assert list(warmup.read_tfrecords(record + warmup.tfrecord(b""))) == [b"abc", b""]


def test_corrupt_records_are_detected() -> None:
    """A flipped payload byte or a truncated file is a ValueError when reading back."""
    record = bytearray(warmup.tfrecord(b"abc"))
    record[12] ^= 1
    with pytest.raises(ValueError, match="corrupt"):
        list(warmup.read_tfrecords(bytes(record)))
    with pytest.raises(ValueError, match="truncated"):
        list(warmup.read_tfrecords(warmup.tfrecord(b"abc")[:-2]))


def test_writes_predict_logs_from_golden(tmp_path: Path) -> None:
    """The file holds the whole golden batch and its first example alone, cast to the signature's dtype."""
    version = tmp_path / "m" / "7"
    write_saved_model(version)
    assert warmup.write_warmup(version, GOLDEN) is True
    payloads = list(warmup.read_tfrecords((version / warmup.WARMUP_FILE).read_bytes()))
    logs = [prediction_log_pb2.PredictionLog.FromString(p) for p in payloads]
    batches = [from_proto(log.predict_log.request.inputs["x"]) for log in logs]
    assert [b.tolist() for b in batches] == [[1.0, 2.0, 5.0], [1.0]]
    assert batches[0].dtype == np.float32
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == {"serving_default"}
    assert not list((version / "assets.extra").glob(".*"))  # no temp file left behind


def test_fixed_batch_gets_only_the_whole_batch(tmp_path: Path) -> None:
    """A signature with a fixed batch dimension is warmed with the golden batch only."""
    version = tmp_path / "1"
    write_saved_model(version, batch=3)
    warmup.write_warmup(version, GOLDEN)
    assert len(list(warmup.read_tfrecords((version / warmup.WARMUP_FILE).read_bytes()))) == 1


def test_existing_warmup_is_kept(tmp_path: Path) -> None:
    """A model that brings its own warmup file keeps it untouched."""
    version = tmp_path / "1"
    write_saved_model(version)
    (version / "assets.extra").mkdir()
    (version / warmup.WARMUP_FILE).write_bytes(b"theirs")
    assert warmup.write_warmup(version, GOLDEN) is False
    assert (version / warmup.WARMUP_FILE).read_bytes() == b"theirs"


def test_golden_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    """Inputs the SavedModel's signature lacks raise GoldenFileError and write nothing."""
    version = tmp_path / "1"
    write_saved_model(version)
    with pytest.raises(GoldenFileError, match="input 'z'"):
        warmup.write_warmup(version, parse_golden(json.dumps({"inputs": {"z": [1]}})))
    assert not (version / warmup.WARMUP_FILE).exists()


def test_signature_needs_the_serve_tag(tmp_path: Path) -> None:
    """Only the meta graph tagged "serve" counts, as in TF Serving."""
    version = tmp_path / "1"
    write_saved_model(version, tags=("train",))
    with pytest.raises(GoldenFileError, match="no 'serve' meta graph"):
        warmup.read_saved_model_signature(version)
