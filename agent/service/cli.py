"""``tfs-agent``: run the sidecar, run one pass, publish a version, and talk to a running agent.

Builds Settings, sets up logging and wires real adapters; everything else lives in the modules it calls.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import click

from agent.core.errors import AgentError, ConfigError
from agent.infra.config import env, load_settings
from agent.service.options import config_option

if TYPE_CHECKING:
    from agent.infra.config import AgentSettings
    from agent.service.app import Agent

DEFAULT_URL = "http://localhost:9464"

url_option = click.option(
    "--url",
    default=lambda: env("URL", DEFAULT_URL),
    show_default="$TFS_AGENT_URL or " + DEFAULT_URL,
    help="Base URL of the running agent's HTTP endpoint.",
)
token_option = click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="File with the admin bearer token (else $TFS_AGENT_ADMIN_TOKEN).",
)


class _LazyGroup(click.Group):
    """Commands whose module is imported only when the command is asked for: ``tfs-agent run`` never loads
    publish's upload machinery (tqdm, the bucket writers) or the fleet admin, which an idle sidecar would
    carry for nothing."""

    lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "publish": ("agent.service.publish", "publish_command"),
        "fleet": ("agent.service.fleet_cli", "fleet_command"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, name = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="tfs-agent")
def cli() -> None:
    """Safe, zero-downtime model hot updates for stock TensorFlow Serving.

    The agent polls a bucket, stages complete versions onto the volume TF Serving reads, validates each
    candidate on golden data inside TF Serving, swaps it in with ReloadConfig, watches it, and rolls back on
    failure. Start with `tfs-agent demo`, then see `tfs-agent run --help`.
    """


class ConfigProblem(click.ClickException):
    """A config no retry can fix: exit 2, the code for bad usage or config (click's own usage errors too)."""

    exit_code = 2


def _settings(path: Path) -> AgentSettings:
    try:
        return load_settings(path)
    except AgentError as err:
        raise ConfigProblem(str(err)) from err


def build_agent(settings: AgentSettings) -> Agent:
    """The agent with its real adapters: gRPC to TF Serving, file:// and gs:// sources."""
    from agent.adapters.sources import open_source, read_uri, stat_uri
    from agent.adapters.tfserving.client import GrpcServingControl
    from agent.core.wedge import ReloadWatch
    from agent.service.app import Agent

    watch = ReloadWatch(settings.serving.wedge_reload_deadlines)
    serving = GrpcServingControl(
        settings.serving.address,
        settings.serving.model_config_file,
        rpc_timeout=settings.serving.rpc_timeout.total_seconds(),
        # ReloadConfig blocks until a new (shadow) model has loaded (B12): as long as a load may take.
        reload_timeout=settings.serving.reload_deadline.total_seconds(),
        reload_watch=watch,
    )
    return Agent(
        settings,
        serving=serving,
        open_source=open_source,
        read_uri=read_uri,
        stat_uri=stat_uri,
        reload_watch=watch,
    )


@cli.command()
@config_option
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Overrides log_format from the config.",
)
def run(config_path: Path, log_format: str | None) -> None:
    """Run the sidecar: write the start-up config, serve HTTP, reconcile every model on its schedule.

    Stops cleanly on SIGTERM/SIGINT: the current step finishes or is left for the next start to undo.
    """
    from agent.infra.logs import setup_logging
    from agent.service.runner import run_forever

    settings = _settings(config_path)
    setup_logging(log_format or settings.log_format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        run_forever(build_agent(settings), stop)
    except ConfigError as err:
        raise ConfigProblem(str(err)) from err
    except AgentError as err:
        raise click.ClickException(str(err)) from err


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def once(config_path: Path, as_json: bool) -> None:
    """Run one pass for every model against a running TF Serving, then exit.

    \b
    Exit codes: 0 every model serves its target (something may have been promoted)
                3 a candidate is held back by policy (window, min_interval, replace_below)
                4 a candidate was rejected or rolled back (quarantined; serving unchanged)
                5 a transient failure (bucket or TF Serving unreachable): try again
                1 other errors (e.g. an unreadable state file)
                2 bad usage or config: unknown key, missing or invalid config or golden
                  file, a source that does not exist
    """
    from agent.adapters.tfserving.config_text import render  # noqa: F401  (fail fast if protos are broken)
    from agent.infra.logs import setup_logging

    settings = _settings(config_path)
    setup_logging(settings.log_format)
    try:
        agent = build_agent(settings)
        agent.check_config()
    except ConfigError as err:
        raise ConfigProblem(str(err)) from err
    except AgentError as err:  # e.g. an unreadable state file: say so, as `run` does
        raise click.ClickException(str(err)) from err
    results = agent.run_once()
    for r in results:
        line = {"model": r.model, "outcome": r.outcome.name.lower(), "version": r.version, "detail": r.detail}
        click.echo(
            json.dumps(line) if as_json else f"{r.model}: {line['outcome']} {r.version or ''} {r.detail}"
        )
    sys.exit(max((r.outcome.exit_code for r in results), default=0))


@cli.command()
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def status(url: str, as_json: bool) -> None:
    """Show what a running agent serves, its candidates and quarantined versions."""
    from agent.service.admin_client import get_status

    data = _call(lambda: get_status(url))
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    click.echo(f"healthy={data.get('healthy')} ready={data.get('ready')}")
    for name, m in data.get("models", {}).items():
        click.echo(
            f"{name}: serving={m.get('serving')} previous={m.get('previous')} pinned={m.get('pinned')}"
            f" ready={m.get('ready')} ({m.get('ready_reason')})"
        )
        for version, reason in sorted(m.get("quarantined", {}).items()):
            click.echo(f"  quarantined {version}: {reason}")
        if m.get("last_error"):
            click.echo(f"  last error: {m['last_error']}")
        for line in _why(m):
            click.echo(f"  {line}")


def _why(model: dict[str, Any]) -> list[str]:
    """A waiting candidate's reason, the serving version's latest score, and evidence that cannot be read."""
    import time

    from agent.core.evidence import ago

    lines = []
    plan = model.get("last_plan") or {}
    if plan.get("action") == "wait":
        lines.append(f"waiting: version {plan.get('version')}: {plan.get('reason')}")
    evidence = model.get("evidence") or {}
    score = evidence.get("serving_score")
    if score:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(score["metrics"].items())) or "no metrics"
        when = ago(time.time() - score["scored_at"])
        lines.append(
            f"serving score: version {score['version']}: {metrics} on golden generation "
            f"{score['generation']}, scored {when}"
        )
    for source, problem in sorted((evidence.get("problems") or {}).items()):
        lines.append(f"evidence problem ({source}): {problem}")
    return lines


def _call(fn: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = fn()
    except AgentError as err:
        raise click.ClickException(str(err)) from err
    return result


def _token(token_file: Path | None) -> str:
    token = token_file.read_text().strip() if token_file else (env("ADMIN_TOKEN") or "")
    if not token:
        raise click.UsageError("an admin token is required: --token-file FILE or $TFS_AGENT_ADMIN_TOKEN")
    return token


def _admin(url: str, token_file: Path | None, model: str, action: str, version: int | None = None) -> None:
    from agent.service.admin_client import admin

    click.echo(
        json.dumps(_call(lambda: admin(url, model, action, token=_token(token_file), version=version)))
    )


@cli.command()
@click.argument("model")
@click.argument("version", type=click.IntRange(min=0))
@url_option
@token_option
def pin(model: str, version: int, url: str, token_file: Path | None) -> None:
    """Serve VERSION of MODEL (validated first) and hold it until `unpin`."""
    _admin(url, token_file, model, "pin", version)


@cli.command()
@click.argument("model")
@url_option
@token_option
def unpin(model: str, url: str, token_file: Path | None) -> None:
    """Return MODEL to its configured version policy."""
    _admin(url, token_file, model, "unpin")


@cli.command()
@click.argument("model")
@url_option
@token_option
def rollback(model: str, url: str, token_file: Path | None) -> None:
    """Go back to MODEL's previous validated version now; the current one is quarantined."""
    _admin(url, token_file, model, "rollback")


@cli.command()
@click.argument("model")
@click.argument("version", type=click.IntRange(min=0))
@url_option
@token_option
def clear(model: str, version: int, url: str, token_file: Path | None) -> None:
    """Lift the quarantine of VERSION of MODEL so the agent may try it again."""
    _admin(url, token_file, model, "clear", version)


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the temporary directory (bucket, volume, logs) afterwards.")
@click.option(
    "--rate",
    type=click.FloatRange(min=1),
    default=100.0,
    show_default=True,
    help="Predict requests per second sent by the load generator.",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Pods (agent + tfs-devserver each) in one fleet; above 1 the fleet demo (docs/fleet.md).",
)
def demo(keep: bool, rate: float, replicas: int) -> None:
    """Run the whole job locally: a file:// bucket, tfs-devserver and the agent.

    Publishes v1, starts a load generator, publishes a good v2 and a v3 failing its golden check, and prints
    a timeline. Exits 0 only if v2 was promoted with zero failed requests and v3 was rejected while v2 kept
    serving. Needs TensorFlow (pip install tfs-devserver, or ./devserver from a checkout).
    """
    from agent.service.demo.run import run_demo

    sys.exit(run_demo(keep=keep, rate=rate, replicas=replicas))


def main() -> None:
    cli(prog_name="tfs-agent")
