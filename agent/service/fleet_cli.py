"""``tfs-agent fleet ...``: read and change a fleet's records in the bucket itself, so an operator's action
reaches every pod (not one random pod behind the Service).

The model's source and the fleet's name come from the agent's config (``--config``); ``--fleet`` overrides the
name. Exit codes: 0 done, 1 refused or failed (the message says why), 2 bad usage or config.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from agent.core.errors import AgentError
from agent.core.fleet_records import Release
from agent.fleet import FleetCoordinator, FleetParams, admin, fleet_uri
from agent.infra.clock import SystemClock
from agent.infra.config import AgentSettings, ModelSettings, load_settings
from agent.service.options import config_option

fleet_option = click.option("--fleet", "fleet_name", default=None, help="Fleet name (default: the config's).")


@click.group("fleet")
def fleet_command() -> None:
    """Show and steer a fleet of agents through the records in the bucket (docs/fleet.md)."""


def _settings(config_path: Path) -> AgentSettings:
    try:
        return load_settings(config_path)
    except AgentError as err:
        raise click.UsageError(str(err)) from err


def _coordinator(settings: AgentSettings, model: ModelSettings, fleet_name: str | None) -> FleetCoordinator:
    from agent.adapters.sources import open_record_store

    name = fleet_name or (settings.fleet.name if settings.fleet else None)
    if name is None:
        raise click.UsageError("the config has no fleet: block; add one or pass --fleet NAME")
    params = (
        FleetParams.from_settings(settings.fleet) if settings.fleet else FleetParams(name, admin.OPERATOR)
    )
    params = FleetParams(**{**params.__dict__, "fleet": name, "pod": admin.OPERATOR})
    store = open_record_store(fleet_uri(model.source, name), endpoint_url=model.endpoint_url)
    return FleetCoordinator(store, params, SystemClock())


def _model(settings: AgentSettings, name: str) -> ModelSettings:
    try:
        return settings.model(name)
    except AgentError as err:
        raise click.UsageError(str(err)) from err


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except AgentError as err:
        raise click.ClickException(str(err)) from err


@fleet_command.command("status")
@config_option
@fleet_option
@click.option("--model", "model_name", default=None, help="Only this model (default: every model).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_command(config_path: Path, fleet_name: str | None, model_name: str | None, as_json: bool) -> None:
    """The release, verdicts, slots and one row per pod, for each model."""
    settings = _settings(config_path)
    models = [_model(settings, model_name)] if model_name else list(settings.models)
    docs = {m.name: _status(settings, m, fleet_name) for m in models}
    if as_json:
        click.echo(json.dumps(docs, indent=2, sort_keys=True))
        return
    for name, doc in docs.items():
        _print_status(name, doc)


def _status(settings: AgentSettings, model: ModelSettings, fleet_name: str | None) -> dict[str, Any]:
    coordinator = _coordinator(settings, model, fleet_name)
    doc: dict[str, Any] = _run(lambda: admin.status(coordinator))
    return doc


def _print_status(name: str, doc: dict[str, Any]) -> None:
    release = doc["release"]
    if release is None:
        click.echo(f"{name}: no release yet ({doc['uri']})")
    else:
        pinned = " pinned" if release["pinned"] else ""
        click.echo(
            f"{name}: release {release['revision']} → {release['target']} (previous {release['previous']})"
            f" {release['phase']}{pinned}: {release['reason']} [by {release['who']}]"
        )
    for version, reason in sorted(doc["verdicts"].items(), key=lambda kv: int(kv[0])):
        click.echo(f"  rejected {version}: {reason}")
    for slot in doc["slots"]:
        if slot["holder"]:
            click.echo(f"  slot {slot['slot']}: {slot['holder']} {slot.get('purpose')} ({slot['age_s']}s)")
    for pod in doc["pods"]:
        live = "live" if pod["live"] else "silent"
        error = f" error: {pod['last_error']}" if pod.get("last_error") else ""
        click.echo(
            f"  pod {pod['pod']}: serving {pod.get('serving')} {pod.get('phase', '?')} {live}"
            f" ({pod['heartbeat_age_s']}s){error}"
        )
    for problem in doc["problems"]:
        click.echo(f"  PROBLEM {problem}")


def _release_line(release: Release) -> str:
    return f"release {release.revision}: {release.target} {release.phase} ({release.reason})"


@fleet_command.command("pin")
@click.argument("model")
@click.argument("version", type=click.IntRange(min=0))
@config_option
@fleet_option
def pin_command(model: str, version: int, config_path: Path, fleet_name: str | None) -> None:
    """Release VERSION of MODEL to the whole fleet (validated first) and hold it until `fleet unpin`."""
    settings = _settings(config_path)
    m = _model(settings, model)
    coordinator = _coordinator(settings, m, fleet_name)
    incomplete = _run(lambda: _incomplete(m, version))
    click.echo(_release_line(_run(lambda: admin.pin(coordinator, version, incomplete=incomplete))))


def _release_command(name: str, action: Callable[[FleetCoordinator], Release], help_text: str) -> None:
    """``fleet NAME MODEL``: one operator action on MODEL's release, printing the release it leaves."""

    @fleet_command.command(name, help=help_text)
    @click.argument("model")
    @config_option
    @fleet_option
    def command(model: str, config_path: Path, fleet_name: str | None) -> None:
        settings = _settings(config_path)
        coordinator = _coordinator(settings, _model(settings, model), fleet_name)
        click.echo(_release_line(_run(lambda: action(coordinator))))


_release_command("unpin", admin.unpin, "Let the pods' own policies start releases of MODEL again.")
_release_command(
    "rollback",
    admin.rollback,
    "Reject MODEL's current target and roll every pod back to the previous version.",
)
_release_command(
    "abort",
    admin.abort,
    "Stop MODEL's release under way: its target is rejected, canaries roll back, nobody else moves.",
)


@fleet_command.command("clear")
@click.argument("model")
@click.argument("version", type=click.IntRange(min=0))
@config_option
@fleet_option
def clear_command(model: str, version: int, config_path: Path, fleet_name: str | None) -> None:
    """Lift the fleet's rejection of VERSION of MODEL."""
    settings = _settings(config_path)
    coordinator = _coordinator(settings, _model(settings, model), fleet_name)
    _run(lambda: admin.clear(coordinator, version))
    click.echo(f"{model}: version {version} is no longer rejected")


def _incomplete(model: ModelSettings, version: int) -> str | None:
    """Why ``version`` is not a complete version in the bucket under the model's completion mode, or None."""
    from agent.adapters.sources import open_source
    from agent.pipeline.discovery import Discovery

    source = open_source(
        model.source, endpoint_url=model.endpoint_url, listing_checksums=model.completion.mode != "manifest"
    )
    result = Discovery(source, model.completion, model=model.name).poll()
    if version in result.complete:
        return None
    if version in result.invalid:
        return f"version {version} is invalid in the bucket: {result.invalid[version]}"
    if version in result.incomplete:
        return f"version {version} is not complete in the bucket yet ({model.completion.mode})"
    return f"version {version} does not exist under {model.source}"
