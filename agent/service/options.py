"""Command-line options shared by ``tfs-agent`` and ``tfs-agent fleet`` (env vars read here, as in cli.py)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.infra.config import env

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: env("CONFIG", "/etc/tfs-agent/config.yaml"),
    show_default="$TFS_AGENT_CONFIG or /etc/tfs-agent/config.yaml",
    help="The agent's YAML config file.",
)
