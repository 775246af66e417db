"""Reading and checking ModelServerConfig / MonitoringConfig text protos the way the stock server does.

Why here: start-up (B2), the config-file poller (B8) and ReloadConfig (B10) must apply the same checks with
the same messages; keeping them in one module makes that true by construction.

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import Message
from tensorflow_serving.config import model_server_config_pb2

from tfs_devserver.monitoring_proto import MonitoringConfig
from tfs_devserver.status import Code, ServingError, invalid_argument

ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelConfig = model_server_config_pb2.ModelConfig

TENSORFLOW_PLATFORM = "tensorflow"
_URI = re.compile(r"^[A-Za-z][0-9A-Za-z.]*://")


class ConfigParseError(ServingError):
    """A config file that is not a valid text proto; ``parser_message`` is the stock stderr line."""

    def __init__(self, path: str, parser_message: str) -> None:
        super().__init__(Code.INVALID_ARGUMENT, f"Invalid protobuf file: '{path}'")
        self.parser_message = parser_message


def _parse_text(path: str, message: Message) -> None:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ServingError(Code.NOT_FOUND, f"{path}; {exc.strerror or exc}") from exc
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        reason = re.sub(r"^\d+:\d+ : ", "", str(exc))
        where = f"{exc.GetLine()}:{exc.GetColumn()}: " if exc.GetLine() is not None else ""
        full_name = message.DESCRIPTOR.full_name
        raise ConfigParseError(path, f"Error parsing text-format {full_name}: {where}{reason}") from exc


def read_model_server_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    """Parse ``--model_config_file``; ConfigParseError carries the parser's line:column reason."""
    config = ModelServerConfig()
    _parse_text(path, config)
    return config


def read_monitoring_config(path: str) -> Any:
    """Parse ``--monitoring_config_file``."""
    config = MonitoringConfig()
    _parse_text(path, config)
    return config


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The config stock main.cc builds from ``--model_name``/``--model_base_path``."""
    config = ModelServerConfig()
    config.model_config_list.config.add(name=name, base_path=base_path, model_platform=TENSORFLOW_PLATFORM)
    return config


def is_absolute_path_or_uri(path: str) -> bool:
    """TF Serving's UriIsAbsolute: ``/abs/path`` or ``scheme://...``."""
    return path.startswith("/") or bool(_URI.match(path))


def validate_config_list(configs: list[model_server_config_pb2.ModelConfig]) -> None:
    """The first two checks of B10: duplicate names, then non-absolute base paths."""
    seen: set[str] = set()
    for config in configs:
        if config.name in seen:
            raise invalid_argument(f"Illegal to list model {config.name} multiple times in config list")
        seen.add(config.name)
    for config in configs:
        if not is_absolute_path_or_uri(config.base_path):
            raise invalid_argument(
                f"Expected model {config.name} to have an absolute path or URI; "
                f"got base_path()={config.base_path}"
            )


def validate_no_platform_changes(
    old: list[model_server_config_pb2.ModelConfig], new: list[model_server_config_pb2.ModelConfig]
) -> None:
    """B10: a model that stays in the config may not change its platform."""
    old_platforms = {c.name: c.model_platform for c in old}
    for config in new:
        before = old_platforms.get(config.name)
        if before is not None and before != config.model_platform:
            raise invalid_argument(
                f"Illegal to change a model's platform. For model {config.name} platform was {before} and "
                f"new platform requested is {config.model_platform}"
            )


def validate_platforms(configs: list[model_server_config_pb2.ModelConfig]) -> None:
    """B10, last check: only the TensorFlow platform is served (a missing platform is unsupported too)."""
    for config in configs:
        if config.model_platform != TENSORFLOW_PLATFORM:
            raise invalid_argument(
                f"Model {config.name} requests unsupported platform {config.model_platform}"
            )
