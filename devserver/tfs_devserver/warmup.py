"""Warmup replay (B22): run the requests in ``assets.extra/tf_serving_warmup_requests`` while loading.

Why: the first requests to a freshly loaded TensorFlow model are slow (graph optimisation, allocator warm-up);
the stock server replays recorded PredictionLogs before declaring the version AVAILABLE, and a failing replay
fails the load. A missing file is fine.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from tensorflow_serving.apis import prediction_log_pb2

from tfs_devserver import examples, inference
from tfs_devserver.servable import Servable
from tfs_devserver.status import Code, ServingError, from_exception, invalid_argument
from tfs_devserver.tensors import to_numpy

log = logging.getLogger("tensorflow_serving.servables.tensorflow.saved_model_warmup")

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000


def _records(path: str) -> Iterator[bytes]:
    import tensorflow as tf

    try:
        for record in tf.data.TFRecordDataset(path):
            yield record.numpy()
    except Exception as exc:
        raise from_exception(exc) from exc


def _replay(servable: Servable, log_entry: prediction_log_pb2.PredictionLog) -> None:
    kind = log_entry.WhichOneof("log_type")
    if kind == "predict_log":
        request = log_entry.predict_log.request
        inputs = {k: to_numpy(v) for k, v in request.inputs.items()}
        inference.predict(servable, request.model_spec.signature_name, inputs, list(request.output_filter))
    elif kind == "classify_log":
        request_c = log_entry.classify_log.request
        examples.classify(servable, request_c.model_spec.signature_name, request_c.input)
    elif kind == "regress_log":
        request_r = log_entry.regress_log.request
        examples.regress(servable, request_r.model_spec.signature_name, request_r.input)
    elif kind == "multi_inference_log":
        examples.multi_inference(servable, log_entry.multi_inference_log.request)
    else:
        raise ServingError(Code.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}")


def run_warmup(servable: Servable) -> int:
    """Replay the warmup file of a just-loaded version; returns the number of records replayed."""
    path = os.path.join(servable.path, WARMUP_FILE)
    if not os.path.exists(path):
        log.info("No warmup data file found at %s", path)
        return 0
    count = 0
    for raw in _records(path):
        count += 1
        if count > MAX_RECORDS:
            raise invalid_argument(f"Number of warmup records exceeds the maximum ({MAX_RECORDS}) at {path}")
        try:
            entry = prediction_log_pb2.PredictionLog.FromString(raw)
        except Exception as exc:
            raise ServingError(Code.DATA_LOSS, f"Failed to parse warmup record {count} in {path}") from exc
        _replay(servable, entry)
    log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d.", path, count)
    return count
