"""tensorflow_model_server's command line (docs/tfserving-behaviour.md#b1).

Why a hand-written parser: the stock binary accepts ``--name=value`` (we also take ``--name value``), treats a
bare ``--flag`` as true for booleans, and does not stop on unknown arguments — it prints ``unknown argument:
...`` and carries on. argparse would exit instead. Flags the stock binary has but the devserver cannot honour
(batching, GPU, TFLite...) are accepted and ignored so that a stock command line runs unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


class FlagError(ValueError):
    """A value that does not parse for its flag (the stock binary prints usage and exits)."""


@dataclass
class Flags:
    """Every flag the devserver honours, with the stock defaults."""

    port: int = 8500
    grpc_socket_path: str = ""
    grpc_channel_arguments: str = ""
    grpc_max_threads: int = 0
    rest_api_port: int = 0
    rest_api_num_threads: int = 0
    rest_api_timeout_in_ms: int = 30000
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    model_name: str = "default"
    model_base_path: str = ""
    allow_version_labels_for_unavailable_models: bool = False
    file_system_poll_wait_seconds: int = 1
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    num_load_threads: int = 0
    num_unload_threads: int = 0
    monitoring_config_file: str = ""
    enable_model_warmup: bool = True
    saved_model_tags: str = "serve"
    version: bool = False
    ignored: dict[str, str] = field(default_factory=dict)


# Stock flags accepted for command-line compatibility; they change nothing in the devserver.
IGNORED_FLAGS = frozenset(
    {
        "enable_batching",
        "allow_batch_timeout_microseconds",
        "batching_parameters_file",
        "enable_per_model_batching_parameters",
        "flush_filesystem_caches",
        "tensorflow_session_parallelism",
        "tensorflow_intra_op_parallelism",
        "tensorflow_inter_op_parallelism",
        "tensorflow_session_config_file",
        "platform_config_file",
        "ssl_config_file",
        "per_process_gpu_memory_fraction",
        "xla_cpu_compilation_enabled",
        "enable_signature_method_name_check",
        "remove_unused_fields_from_bundle_metagraph",
        "prefer_tflite_model",
        "use_tflite_model",
        "num_tflite_pools",
        "num_tflite_interpreters_per_pool",
        "num_request_iterations_for_warmup",
        "enable_profiler",
        "thread_pool_factory_config_file",
        "mixed_precision",
        "skip_initialize_tpu",
        "enable_grpc_healthcheck_service",
        "rest_api_enable_cors_support",
        "model_config_file_poll_wait_seconds_deprecated",
        "grpc_max_message_size",
    }
)

_FIELDS = {f.name: f for f in dataclasses.fields(Flags) if f.name != "ignored"}
_BOOL_WORDS = {"true": True, "1": True, "false": False, "0": False}

USAGE = (
    "usage: tfs-devserver [--port=8500] [--rest_api_port=0] (--model_name=NAME --model_base_path=/ABS/PATH "
    "| --model_config_file=FILE) [other tensorflow_model_server flags]"
)


def _convert(name: str, raw: str) -> int | bool | str:
    kind = _FIELDS[name].type
    if kind == "bool":
        if raw.lower() not in _BOOL_WORDS:
            raise FlagError(f"Couldn't interpret value {raw} for flag {name}.")
        return _BOOL_WORDS[raw.lower()]
    if kind == "int":
        try:
            return int(raw.strip(), 10)
        except ValueError:
            raise FlagError(f"Couldn't interpret value {raw} for flag {name}.") from None
    return raw


def _split(argv: list[str], i: int) -> tuple[str, str | None, int]:
    """(name, value or None, index of the next argument) for the flag at ``argv[i]``."""
    body = argv[i][2:]
    if "=" in body:
        name, value = body.split("=", 1)
        return name, value, i + 1
    name = body
    if name in _FIELDS and _FIELDS[name].type != "bool" and i + 1 < len(argv):
        return name, argv[i + 1], i + 2
    if (
        name in _FIELDS
        and _FIELDS[name].type == "bool"
        and i + 1 < len(argv)
        and argv[i + 1].lower() in _BOOL_WORDS
    ):
        return name, argv[i + 1], i + 2
    if name in IGNORED_FLAGS and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
        return name, argv[i + 1], i + 2
    return name, None, i + 1


def parse_flags(argv: list[str]) -> tuple[Flags, list[str]]:
    """Parse a command line; returns the flags and the arguments that were not recognised."""
    flags = Flags()
    unknown: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            unknown.append(arg)
            i += 1
            continue
        name, value, i = _split(argv, i)
        if name in IGNORED_FLAGS:
            flags.ignored[name] = value or ""
        elif name not in _FIELDS:
            unknown.append(arg)
        elif value is None and _FIELDS[name].type != "bool":
            raise FlagError(f"Missing value for flag {name}.")
        else:
            setattr(flags, name, _convert(name, "true" if value is None else value))
    return flags, unknown
