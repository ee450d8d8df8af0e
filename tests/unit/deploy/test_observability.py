"""The dashboard and the alert rules read only the metrics that docs/observability.md
documents (the contract between the code and the dashboards), in valid PromQL, and cover
what on-call must see; Prometheus scrapes the API and every worker."""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
import pytest
import yaml

from tests.unit.deploy.conftest import DEPLOY, documented_metrics, queryable_series

# Grafana's interval variables, replaced by a plausible value before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def metric_names(expr: str) -> set[str]:
    """Every metric an expression reads, from its parsed syntax tree (so a typo in the
    PromQL itself fails too)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    tree = promql_parser.parse(expr)
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    names.add(matcher.value)
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.AggregateExpr):
            walk(node.expr)
            if node.param is not None:
                walk(node.param)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr,
                               promql_parser.SubqueryExpr)):
            walk(node.expr)
        else:
            assert isinstance(node, (promql_parser.NumberLiteral, promql_parser.StringLiteral)), node

    walk(tree)
    return names


def dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "dashboard.json").read_text(encoding="utf-8"))


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in rules["groups"] for rule in group["rules"]]


def rule(name: str) -> dict[str, Any]:
    (found,) = [r for r in alert_rules() if r["alert"] == name]
    return found


def test_the_metric_parser_sees_every_selector() -> None:
    expr = ('histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) / '
            '(b offset 1m) + on() group_left count_values("v", c) or absent({__name__="d"})'
            ' and max_over_time(e[1h:1m])')
    assert metric_names(expr) == {"a_bucket", "b", "c", "d", "e"}
    with pytest.raises(Exception):  # noqa: B017 (the parser's own error type)
        metric_names("sum(rate(x[5m])")


def test_the_documented_list_has_every_metric_on_call_needs() -> None:
    metrics = documented_metrics()
    for name, kind in {
        "exchange_tokens_http_requests_total": "counter",
        "exchange_tokens_http_request_duration_seconds": "histogram",
        "exchange_tokens_tokens_issued_total": "counter",
        "exchange_tokens_tokens_redeemed_total": "counter",
        "exchange_tokens_tokens_cancelled_total": "counter",
        "exchange_tokens_points_restored_total": "counter",
        "exchange_tokens_refunds_total": "counter",
        "exchange_tokens_refund_lateness_seconds": "histogram",
        "exchange_tokens_outbox_backlog": "gauge",
        "exchange_tokens_outbox_oldest_age_seconds": "gauge",
        "exchange_tokens_dead_letters_total": "counter",
        "exchange_tokens_dead_letter_depth": "gauge",
        "exchange_tokens_retries_total": "counter",
        "exchange_tokens_active_tokens_past_expiry": "gauge",
        "exchange_tokens_worker_consuming": "gauge",
    }.items():
        assert metrics.get(name) == kind, name
    for name, kind in metrics.items():
        if kind == "counter":
            assert name.endswith("_total"), name
        if kind != "external":
            assert name.startswith("exchange_tokens_"), name


def test_the_dashboard_is_a_grafana_dashboard_with_unique_panels_on_a_24_column_grid() -> None:
    board = dashboard()
    assert board["uid"] == "exchange-tokens" and board["title"]
    assert isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


def test_every_dashboard_query_is_valid_promql_over_documented_metrics() -> None:
    allowed = queryable_series(documented_metrics())
    for expr in dashboard_exprs():
        names = metric_names(expr)
        assert names, expr
        assert names <= allowed, (expr, names - allowed)


def test_the_dashboard_shows_every_figure_the_issue_asks_for() -> None:
    read = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert {
        "exchange_tokens_tokens_issued_total",
        "exchange_tokens_tokens_redeemed_total",
        "exchange_tokens_tokens_cancelled_total",
        "exchange_tokens_points_restored_total",
        "exchange_tokens_refund_lateness_seconds_bucket",
        "exchange_tokens_outbox_backlog",
        "exchange_tokens_outbox_oldest_age_seconds",
        "exchange_tokens_dead_letter_depth",
        "exchange_tokens_retries_total",
        "exchange_tokens_active_tokens_past_expiry",
        "exchange_tokens_http_requests_total",
        "exchange_tokens_http_request_duration_seconds_bucket",
    } <= read
    lateness = [e for e in dashboard_exprs() if "refund_lateness_seconds_bucket" in e]
    assert any("histogram_quantile(0.99" in e for e in lateness)
    assert any("histogram_quantile(0.5" in e for e in lateness)
    assert "heatmap" in {p["type"] for p in dashboard()["panels"]}


def test_every_alert_rule_is_valid_promql_over_documented_metrics() -> None:
    allowed = queryable_series(documented_metrics())
    for alert in alert_rules():
        names = metric_names(alert["expr"])
        assert names and names <= allowed, (alert["alert"], names - allowed)
        assert alert["labels"]["severity"] in ("page", "ticket")
        assert alert["annotations"]["summary"]


@pytest.mark.parametrize(
    ("alert", "metric", "threshold", "duration"),
    [
        ("OutboxBacklogStale", "exchange_tokens_outbox_oldest_age_seconds", "> 30", None),
        ("DeadLettersWaiting", "exchange_tokens_dead_letter_depth", "> 0", None),
        ("RefundLatenessHigh", "exchange_tokens_refund_lateness_seconds_bucket", "> 1", None),
        ("ActiveTokensPastExpiry", "exchange_tokens_active_tokens_past_expiry", "> 0", "2m"),
        ("ApiNotReady", "probe_success", "== 0", None),
        ("WorkerNotConsuming", "exchange_tokens_worker_consuming", "< 1", None),
    ],
)
def test_the_alerts_on_call_asked_for_exist(
    alert: str, metric: str, threshold: str, duration: str | None
) -> None:
    found = rule(alert)
    assert metric in metric_names(found["expr"])
    assert re.search(re.escape(threshold) + r"\s*$", found["expr"].strip()), found["expr"]
    if duration:
        assert found["for"] == duration
    if metric.endswith("_bucket"):
        assert "histogram_quantile(0.99" in found["expr"].replace(" ", "").replace("\n", "")


def test_prometheus_scrapes_the_api_and_every_worker_replica_and_loads_the_rules(
    services: dict[str, Any],
) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for job, service, port in (("api", "api", 8000), ("worker", "worker", 9100)):
        (sd,) = jobs[job]["dns_sd_configs"]
        assert sd["names"] == [service] and sd["port"] == port and sd["type"] == "A"
        assert jobs[job].get("metrics_path", "/metrics") == "/metrics"
    readyz = jobs["api-readyz"]
    assert readyz["params"]["module"] == ["http_2xx"]
    assert any(r.get("replacement", "").endswith("/readyz") for r in readyz["relabel_configs"])
    # The files Prometheus reads are the ones compose mounts.
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    for path in config["rule_files"]:
        assert (DEPLOY / mounts[path]).resolve() == (DEPLOY / "prometheus" / "alerts.yml").resolve()


def test_grafana_provisions_the_prometheus_data_source_and_the_dashboard(
    services: dict[str, Any],
) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "exchange-tokens.yml").read_text())
    (provider,) = providers["providers"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    mounted = [source for target, source in mounts.items()
               if target.startswith(provider["options"]["path"] + "/")]
    assert mounted == ["./grafana/dashboard.json"]


def test_every_metric_the_worker_registers_is_documented() -> None:
    from prometheus_client import REGISTRY

    import workers.metrics  # noqa: F401 (registers the worker's metrics)

    documented = queryable_series(documented_metrics())
    registered = {
        sample.name
        for family in REGISTRY.collect()
        if family.name.startswith("exchange_tokens_")
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    assert registered, "the worker registers no exchange_tokens_ metric"
    assert registered <= documented, registered - documented


def test_every_metric_the_api_registers_is_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    from api.metrics import Metrics

    metrics = Metrics()
    metrics.observe("GET", "/healthz", 200, 0.001)
    metrics.issued.inc()
    documented = queryable_series(documented_metrics())
    assert metrics.registry is not None
    registered = {
        sample.name
        for family in metrics.registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    assert registered and all(n.startswith("exchange_tokens_") for n in registered), registered
    assert registered <= documented, registered - documented
