"""Predict on one servable, independent of gRPC or REST (B16, B23); Classify/Regress live in ``examples``.

Why transport-free: both front ends must give the same checks and messages; they differ only in how tensors
are encoded. The checks are TF Serving's (predict_util.cc: PreProcessPrediction) and no more: the signature
exists, the number and names of the inputs, each input's dtype (Session::Run's own feed check), the output
filter. Shapes are never compared with the signature's TensorInfo: the graph's ops decide, and their errors
come back with TF's code and message.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfs_devserver.servable import Servable, Signature, TensorInfo
from tfs_devserver.status import invalid_argument
from tfs_devserver.tensors import datatype_of, dtype_name

Array = np.ndarray[Any, Any]


def _check_keys(signature: Signature, inputs: dict[str, Array]) -> None:
    sent, wanted = sorted(inputs), sorted(signature.inputs)
    if len(sent) != len(wanted):
        extra = sorted(set(sent) - set(wanted))
        missing = sorted(set(wanted) - set(sent))
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(wanted)} len({{{','.join(sent)}}}) != "
            f"len({{{','.join(wanted)}}}). Sent extra: {{{','.join(extra)}}}. "
            f"Missing but required: {{{','.join(missing)}}}."
        )
    for alias in sent:
        if alias not in signature.inputs:
            raise invalid_argument(
                f"input tensor alias not found in signature: {alias}. Inputs expected to be in the set "
                f"{{{','.join(wanted)}}}."
            )


def _check_tensor(index: int, info: TensorInfo, value: Array) -> None:
    """DirectSession's feed check: the fed dtype must be the graph's (shapes are the ops' business)."""
    got = datatype_of(value)
    if got != info.dtype:
        raise invalid_argument(
            f"Expects arg[{index}] to be {dtype_name(info.dtype)} but {dtype_name(got)} is provided"
        )


def validate_inputs(signature: Signature, inputs: dict[str, Array]) -> None:
    """Names, count and dtypes of a request against the signature, with the stock messages (never shapes)."""
    _check_keys(signature, inputs)
    for index, alias in enumerate(sorted(signature.inputs)):
        _check_tensor(index, signature.inputs[alias], inputs[alias])


def _output_keys(signature: Signature, output_filter: list[str]) -> list[str]:
    if not output_filter:
        return sorted(signature.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def predict(
    servable: Servable, signature_name: str, inputs: dict[str, Array], output_filter: list[str] | None = None
) -> dict[str, Array]:
    """PreProcessPrediction, then Session::Run feeding and fetching tensor names; outputs by alias."""
    signature = servable.signature(signature_name)
    validate_inputs(signature, inputs)
    keys = _output_keys(signature, output_filter or [])
    feeds = {signature.inputs[alias].name: inputs[alias] for alias in sorted(signature.inputs)}
    values = servable.run(feeds, [signature.outputs[k].name for k in keys])
    return dict(zip(keys, values, strict=True))
