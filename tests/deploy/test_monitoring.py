"""Alerts, their unit tests and runbooks, the PodMonitor and the dashboard: checked against the metrics the
agent really exports, with Prometheus' own promtool."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.infra.metrics import AgentMetrics
from tests.deploy.conftest import MONITORING, ROOT, load_yaml, only, render, run, tool

_AGENT_METRIC = re.compile(r"\btfs_agent_[a-z_]+")


def _alerts() -> dict[str, dict[str, Any]]:
    rules = load_yaml(MONITORING / "rules.yaml")
    return {r["alert"]: r for group in rules["groups"] for r in group["rules"] if "alert" in r}


def _exported_names() -> set[str]:
    """Every sample name the agent's registry exposes once a model is declared (with _total, _bucket...)."""
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    metrics.declare("m")
    metrics.poll_interval.labels("m").set(30)
    metrics.last_poll_ok.labels("m").set(1)
    metrics.last_success.labels("m").set(1)
    metrics.errors.labels("m", "download", "X").inc()
    metrics.validation_metric.labels("m", "mae", "candidate").set(0.1)
    metrics.stage_duration.labels("m", "download").observe(1)
    metrics.poll_duration.labels("m").observe(1)
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {sample.name for family in families for sample in family.samples}


def test_promtool_check_rules() -> None:
    """promtool accepts the rule file."""
    result = run(tool("promtool"), "check", "rules", str(MONITORING / "rules.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    """The alert unit tests in rules_test.yaml pass under promtool."""
    result = run(tool("promtool"), "test", "rules", str(MONITORING / "rules_test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing() -> None:
    """Each alert has at least one promtool case where it fires and one where it stays silent."""
    cases = [
        case
        for test in load_yaml(MONITORING / "rules_test.yaml")["tests"]
        for case in test["alert_rule_test"]
    ]
    for alert in _alerts():
        mine = [case for case in cases if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in mine), f"{alert} is never shown firing"
        assert any(not case["exp_alerts"] for case in mine), f"{alert} is never shown silent"


def test_every_alert_has_a_runbook_entry() -> None:
    """Each alert links to a heading of docs/operations.md named after it."""
    operations = (ROOT / "docs" / "operations.md").read_text()
    headings = {line.lstrip("# ").strip() for line in operations.splitlines() if line.startswith("## ")}
    for name, rule in _alerts().items():
        assert name in headings, f"docs/operations.md has no '## {name}' entry"
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"


def test_prometheus_rule_matches_rule_file() -> None:
    """The PrometheusRule carries exactly the groups of rules.yaml."""
    rule = load_yaml(MONITORING / "prometheusrule.yaml")
    assert rule["spec"] == load_yaml(MONITORING / "rules.yaml")


@pytest.mark.parametrize("path", ["monitoring/rules.yaml", "monitoring/dashboard.json"])
def test_alerts_and_dashboard_use_exported_metrics(path: str) -> None:
    """Every tfs_agent_* name in the alerts and the dashboard is one the agent exports."""
    used = set(_AGENT_METRIC.findall((MONITORING.parent / path).read_text()))
    assert used
    assert used <= _exported_names(), (
        f"not exported by agent/infra/metrics.py: {sorted(used - _exported_names())}"
    )


def test_pod_monitor_scrapes_both_containers() -> None:
    """The PodMonitor selects the model-server pod and scrapes the agent and TF Serving on named ports."""
    resources = render("overlays/example")
    monitor = only(resources, "PodMonitor")
    template = only(resources, "Deployment")["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    containers = [*template["spec"]["initContainers"], *template["spec"]["containers"]]
    ports = {p["name"] for c in containers for p in c.get("ports", [])}
    endpoints = {e["port"]: e for e in monitor["spec"]["podMetricsEndpoints"]}
    assert set(endpoints) <= ports
    assert endpoints["metrics"]["path"] == "/metrics"
    assert endpoints["http"]["path"] == "/monitoring/prometheus/metrics"
    jobs = {e["port"]: e["relabelings"][0]["replacement"] for e in endpoints.values()}
    assert jobs == {"metrics": "tfs-agent", "http": "tf-serving"}


def test_dashboard_is_well_formed() -> None:
    """The dashboard parses, panel ids are unique, panels fit the grid and every query has an expression."""
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["expr"].strip(), panel["title"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "model"} <= variables
