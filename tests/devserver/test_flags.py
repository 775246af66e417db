"""Command-line parsing and the process entry point without a model (B1, B2).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import pytest

from tfs_devserver.flags import FlagError, Flags, parse_flags
from tfs_devserver.main import EXIT_FAILURE, main


def test_equals_and_space_forms() -> None:
    """B1: ``--name=value`` and ``--name value`` both work; the last occurrence wins."""
    flags, unknown = parse_flags(
        ["--port=9000", "--rest_api_port", "9001", "--model_name", "m", "--port=9002"]
    )
    assert (flags.port, flags.rest_api_port, flags.model_name, unknown) == (9002, 9001, "m", [])


def test_booleans() -> None:
    """B1: a bare boolean flag is true; ``=false``/``=true`` and a following true/false word set it."""
    flags, _ = parse_flags(["--allow_version_labels_for_unavailable_models", "--enable_model_warmup=false"])
    assert flags.allow_version_labels_for_unavailable_models is True
    assert flags.enable_model_warmup is False
    flags, _ = parse_flags(["--enable_model_warmup", "false", "--port=1"])
    assert (flags.enable_model_warmup, flags.port) == (False, 1)


def test_defaults_are_the_stock_ones() -> None:
    """B1: defaults match tensorflow_model_server."""
    flags = Flags()
    assert (flags.port, flags.rest_api_port, flags.file_system_poll_wait_seconds) == (8500, 0, 1)
    assert (flags.max_num_load_retries, flags.load_retry_interval_micros) == (5, 60_000_000)
    assert (flags.model_config_file_poll_wait_seconds, flags.enable_model_warmup) == (0, True)
    assert flags.allow_version_labels_for_unavailable_models is False


def test_unknown_and_ignored_flags() -> None:
    """B1: unknown arguments are returned (printed by main), stock-only flags are accepted and ignored."""
    flags, unknown = parse_flags(
        ["--bogus=1", "stray", "--enable_batching", "--tensorflow_session_parallelism=2"]
    )
    assert unknown == ["--bogus=1", "stray"]
    assert flags.ignored == {"enable_batching": "", "tensorflow_session_parallelism": "2"}


def test_bad_values_raise() -> None:
    """B1: a value that does not parse for its flag is an error (stock: usage and exit)."""
    with pytest.raises(FlagError, match="Couldn't interpret value abc for flag port"):
        parse_flags(["--port=abc"])
    with pytest.raises(FlagError):
        parse_flags(["--enable_model_warmup=maybe"])
    with pytest.raises(FlagError):
        parse_flags(["--model_name"])


def test_main_without_a_model_prints_usage(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """B1/B2: without --model_base_path or --model_config_file the process prints usage and fails."""
    monkeypatch.setattr("tfs_devserver.main._setup_logging", lambda: None)  # keep pytest's log handlers
    assert main(["--port=1", "--bogus"]) == EXIT_FAILURE
    out = capsys.readouterr().out
    assert "unknown argument: --bogus" in out
    assert "usage:" in out
    assert main(["--port=abc", "--model_base_path=/m"]) == EXIT_FAILURE
