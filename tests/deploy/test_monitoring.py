"""Alerts, their unit tests and runbooks, the PodMonitor and the dashboard: checked against the metrics the
agent really exports, with Prometheus' own promtool.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md."""

from __future__ import annotations

import importlib
import json
import os
import re
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.fleet.metrics import FleetMetrics
from agent.infra.metrics import AgentMetrics
from tests.deploy.conftest import K8S, MONITORING, ROOT, load_yaml, only, render, run, tool

_AGENT_METRIC = re.compile(r"\btfs_agent_[a-z_]+")
#: The base of every runbook_url in rules.yaml; k8s/monitoring/runbook-url replaces it in overlays.
RUNBOOK_BASE_URL = "https://runbooks.invalid/tfs-agent/docs/operations.md"
#: Metrics the alerts and dashboard use before the agent exports them (issue #16: the wedge detector is built
#: on the agent side separately). Documented in docs/operations.md; drop a name here once it is exported.
PENDING_AGENT_METRICS: set[str] = set()
#: User-visible outages: they page. Everything else is a warning (serving goes on).
CRITICAL = {"TfsAgentAllDown", "TfsAgentModelUnavailable", "TfServingAllDown", "TfServingRequestErrors"}
#: TF Serving's series the rules and dashboard read, with the labels they group or filter by (B21;
#: tensorflow_serving/servables/tensorflow/util.cc: request_count{model_name, status},
#: request_latency{model_name, API, entrypoint}).
TF_SERVING_SERIES = {
    ":tensorflow:serving:request_count": {"model_name", "status"},
    ":tensorflow:serving:request_latency_bucket": {"model_name", "API", "entrypoint", "le"},
}


def _alerts(rules: Any = None) -> dict[str, dict[str, Any]]:
    rules = rules if rules is not None else load_yaml(MONITORING / "rules.yaml")
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
    metrics.evidence_ok.labels("m", "golden").set(1)
    metrics.stage_duration.labels("m", "download").observe(1)
    metrics.poll_duration.labels("m").observe(1)
    fleet = FleetMetrics(registry)
    fleet.phase.labels("m", "rolling").set(1)
    fleet.events.labels("m", "takeover").inc()
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
    """Each alert's runbook_url is the placeholder base plus the anchor of its docs/operations.md heading."""
    operations = (ROOT / "docs" / "operations.md").read_text()
    headings = {line.lstrip("# ").strip() for line in operations.splitlines() if line.startswith("## ")}
    for name, rule in _alerts().items():
        assert name in headings, f"docs/operations.md has no '## {name}' entry"
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_BASE_URL}#{name.lower()}"
        assert "runbook" not in rule["annotations"]


def test_overlay_sets_every_runbook_url_from_one_parameter() -> None:
    """The example overlay's runbook_base_url replaces the placeholder in every rendered alert."""
    kustomization = load_yaml(K8S / "overlays" / "example" / "kustomization.yaml")
    (params,) = [g for g in kustomization["configMapGenerator"] if g["name"] == "monitoring-params"]
    base = dict(literal.split("=", 1) for literal in params["literals"])["runbook_base_url"]
    assert base.startswith("https://")
    assert base != RUNBOOK_BASE_URL
    resources = render("overlays/example")
    alerts = _alerts(only(resources, "PrometheusRule")["spec"])
    assert alerts.keys() == _alerts().keys()
    assert {n: r["annotations"]["runbook_url"] for n, r in alerts.items()} == {
        n: f"{base}#{n.lower()}" for n in alerts
    }
    assert not [r for r in resources if r["metadata"]["name"] == "monitoring-params"], "local-config leaked"


def test_runbook_component_refuses_an_overlay_without_the_parameter(tmp_path: Any) -> None:
    """An overlay that includes the runbook-url component but sets no base fails to build, so the
    placeholder cannot reach a cluster unnoticed."""
    here = os.path.relpath(K8S, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{here}/monitoring]\ncomponents: [{here}/monitoring/runbook-url]\n"
    )
    result = run(tool("kubectl"), "kustomize", str(tmp_path))
    assert result.returncode != 0
    assert "monitoring-params" in result.stderr


def test_alerts_aggregate_by_namespace_and_model_with_severity_by_impact() -> None:
    """Every alert groups by namespace (and by model where it is about one), never per pod; outages page."""
    for name, rule in _alerts().items():
        expr = " ".join(rule["expr"].split())
        assert re.search(r"\bby \(namespace\b", expr) or expr.startswith("namespace_model:"), name
        assert "by (namespace, pod" not in expr, name
        assert "instance" not in expr, name
        if "model" in rule["annotations"]["summary"]:
            assert "model" in expr, name
        expected = "critical" if name in CRITICAL else "warning"
        assert rule["labels"]["severity"] == expected, name
        if expected == "critical" and "for" in rule:
            assert _minutes(rule["for"]) <= 5, f"{name} pages only after {rule['for']}"


def _minutes(duration: str) -> int:
    match = re.fullmatch(r"(\d+)m", duration)
    assert match, duration
    return int(match.group(1))


def test_version_skew_is_the_documented_expression() -> None:
    """The skew alert counts distinct serving versions per namespace and model, as issue #16 asks."""
    expr = " ".join(_alerts()["TfsAgentVersionSkew"]["expr"].split())
    assert expr.startswith(
        'count by (namespace, model) (count_values by (namespace, model) ("v", tfs_agent_serving_version'
    )
    assert expr.endswith("> 1")


def test_prometheus_rule_matches_rule_file() -> None:
    """The PrometheusRule carries exactly the groups of rules.yaml."""
    rule = load_yaml(MONITORING / "prometheusrule.yaml")
    assert rule["spec"] == load_yaml(MONITORING / "rules.yaml")


@pytest.mark.parametrize("path", ["monitoring/rules.yaml", "monitoring/dashboard.json"])
def test_alerts_and_dashboard_use_exported_metrics(path: str) -> None:
    """Every tfs_agent_* name in the alerts and the dashboard is one the agent exports (or a documented
    pending one)."""
    used = set(_AGENT_METRIC.findall((MONITORING.parent / path).read_text()))
    assert used
    unknown = used - _exported_names() - PENDING_AGENT_METRICS
    assert not unknown, f"not exported by agent/infra/metrics.py: {sorted(unknown)}"


def test_pending_metrics_are_documented_and_not_yet_exported() -> None:
    """A metric the rules use ahead of the agent is named in docs/operations.md; once the agent exports it,
    this fails so that PENDING_AGENT_METRICS is emptied."""
    operations = (ROOT / "docs" / "operations.md").read_text()
    for name in PENDING_AGENT_METRICS:
        assert f"`{name}`" in operations, name
    assert not PENDING_AGENT_METRICS & _exported_names(), "now exported: remove from PENDING_AGENT_METRICS"


def _devserver_monitoring() -> ModuleType:
    for module in ("tfs_devserver.monitoring", "agent.devserver.monitoring"):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError:
            continue
    pytest.fail("tfs-devserver's monitoring module is neither tfs_devserver.monitoring nor agent.devserver's")


def test_tf_serving_series_match_tf_servings_exporter() -> None:
    """The TF Serving names and labels the rules and dashboard use are what tfs-devserver exports in TF
    Serving's format (a request as TF Serving counts it)."""
    monitoring = _devserver_monitoring()
    metrics = monitoring.Metrics()
    status = importlib.import_module(monitoring.__name__.rsplit(".", 1)[0] + ".status")
    metrics.record_request("m", 1, "predict", "GRPC", status.Code.OK, 0.01)
    # Read as Prometheus ingests it: prometheus_client's parser would add _total to counter names.
    exported = {
        match.group(1): set(re.findall(r'(\w+)="', match.group(2)))
        for match in re.finditer(r"^([^#\s{]+)\{([^}]*)\}", metrics.render(), re.MULTILINE)
    }
    for name, labels in TF_SERVING_SERIES.items():
        assert exported.get(name) == labels, (name, exported.get(name))
    for path in ("rules.yaml", "dashboard.json"):
        used = set(re.findall(r":tensorflow:serving:[a-z_]+", (MONITORING / path).read_text()))
        assert used <= set(TF_SERVING_SERIES), (path, used)


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


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((MONITORING / "dashboard.json").read_text()))


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_is_well_formed() -> None:
    """The dashboard parses, panel ids are unique, panels fit the grid and every query has an expression."""
    dashboard = _dashboard()
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["expr"].strip(), panel["title"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "model", "pod"} <= variables


def test_dashboard_filters_every_query_by_namespace_and_pod() -> None:
    """Every query and annotation honours the namespace and pod variables."""
    dashboard = _dashboard()
    for expr in [*_exprs(dashboard), *(a["expr"] for a in dashboard["annotations"]["list"])]:
        assert 'namespace=~"$namespace"' in expr, expr
        assert 'pod=~"$pod"' in expr, expr


def test_dashboard_shows_versions_per_pod_and_never_hides_a_split() -> None:
    """A table lists the serving version per pod; no query folds pods' versions into one number, except to
    count the distinct versions."""
    dashboard = _dashboard()
    tables = [p for p in dashboard["panels"] if p["type"] == "table"]
    assert any(
        t["targets"][0]["expr"].startswith("tfs_agent_serving_version{") and t["targets"][0].get("instant")
        for t in tables
    )
    for expr in _exprs(dashboard):
        assert "max by (model)" not in expr, expr
        if "tfs_agent_serving_version" in expr and " by (" in expr:
            assert "count_values" in expr, expr
