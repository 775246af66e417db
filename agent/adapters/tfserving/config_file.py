"""The model config file on the local volume, which TF Serving starts on and polls.

Read it back, write it atomically, and refuse an entry TF Serving could hang on (B12 of
docs/tfserving-behaviour.md) before it reaches the file or a ReloadConfig. No gRPC: the start-up config is
written before TF Serving runs (B2), and ``GrpcServingControl`` (client.py) keeps the file and its
ReloadConfig calls in agreement (B8).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agent.adapters.tfserving import config_text
from agent.core.domain import ServedModel
from agent.core.errors import ServingRejectedError
from agent.infra.files import write_atomic


def read_config(path: Path) -> dict[str, ServedModel]:
    """The models in the config file at ``path``; empty when it does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return {m.name: m for m in config_text.parse(text, str(path))}


def write_config_file(path: Path, models: Iterable[ServedModel] = ()) -> None:
    """Write the config TF Serving starts on, without a server (B2: it listens only once all of these load).

    On a fresh volume that is an empty list; later, the last validated versions that are intact on disk.
    """
    models = list(models)
    for model in models:
        check_complete(model)
    write_atomic(path, config_text.render(models).encode())


initial_config = write_config_file


def check_complete(model: ServedModel) -> None:
    """Refuse a config entry TF Serving could hang on (B12): every version needs its directory and graph."""
    base = Path(model.base_path)
    if not base.is_absolute():
        raise ServingRejectedError(
            f"not sent: {model.name} base_path {model.base_path!r} is not a local "
            "absolute path (the agent serves only from the local volume)"
        )
    if not model.versions:
        raise ServingRejectedError(f"not sent: {model.name} lists no version; remove the model instead")
    for version in model.versions:
        vdir = base / str(version)
        if not any((vdir / graph).is_file() for graph in ("saved_model.pb", "saved_model.pbtxt")):
            raise ServingRejectedError(f"not sent: {vdir} is not a complete SavedModel (no saved_model.pb)")
    stray = [f"{label}→{v}" for label, v in model.labels if v not in model.versions]
    if stray:
        raise ServingRejectedError(f"not sent: {model.name} labels point at unlisted versions: {stray}")
