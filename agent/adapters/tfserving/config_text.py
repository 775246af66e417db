"""The ModelServerConfig text file the agent owns: render it from ServedModels, and read it back on start-up.

Pure (protobuf only): ReloadConfig replaces the whole model list and unloads what is left out
(docs/tfserving-behaviour.md#b11), so every reload renders every managed model, always with a ``specific``
policy — the agent, not TF Serving's "latest" rule, decides which versions load. Output is deterministic
(models by name, versions and labels sorted) so an unchanged config renders to the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.adapters.tfserving.protos import model_server_config_pb2, text_format
from agent.core.domain import ServedModel
from agent.core.errors import ConfigError

HEADER = "# Written by tfs-agent, which owns this file: hand edits are overwritten at the next change.\n"
PLATFORM = "tensorflow"


def to_proto(models: Iterable[ServedModel]) -> model_server_config_pb2.ModelServerConfig:
    """The ModelServerConfig message for ``models``; an empty list is valid and unloads every model (B9)."""
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()
    seen: set[str] = set()
    for model in sorted(models, key=lambda m: m.name):
        if model.name in seen:
            raise ValueError(f"model {model.name!r} listed twice; TF Serving rejects that (B10)")
        seen.add(model.name)
        entry = config.model_config_list.config.add()
        entry.name = model.name
        entry.base_path = model.base_path
        entry.model_platform = PLATFORM
        entry.model_version_policy.specific.versions.extend(sorted(set(model.versions)))
        for label, version in sorted(model.labels):
            entry.version_labels[label] = version
    return config


def render(models: Iterable[ServedModel]) -> str:
    """Text-format ModelServerConfig for ``models``, byte-for-byte stable for the same set of models."""
    body: str = text_format.MessageToString(to_proto(models))
    return HEADER + body


def parse(text: str, origin: str = "model config") -> tuple[ServedModel, ...]:
    """Read a config file back (agent start-up); raise ConfigError for anything the agent would not write."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise ConfigError(f"{origin}: not a text-format ModelServerConfig: {err}") from err
    if config.WhichOneof("config") == "custom_model_config":
        raise ConfigError(f"{origin}: custom_model_config is not supported; use model_config_list")
    return tuple(_served(entry, origin) for entry in config.model_config_list.config)


def _served(entry: model_server_config_pb2.ModelConfig, origin: str) -> ServedModel:
    policy = entry.model_version_policy
    if entry.HasField("model_version_policy") and policy.WhichOneof("policy_choice") != "specific":
        raise ConfigError(
            f"{origin}: model {entry.name!r} uses a {policy.WhichOneof('policy_choice')} policy; the agent "
            "writes only `specific` policies — move the file aside and let the agent write it"
        )
    return ServedModel(
        name=entry.name,
        base_path=entry.base_path,
        versions=tuple(sorted(policy.specific.versions)),
        labels=tuple(sorted(entry.version_labels.items())),
    )
