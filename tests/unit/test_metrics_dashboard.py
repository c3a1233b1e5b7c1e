"""The Grafana dashboard cannot drift from the code: its metrics exist in our registries, its views in 018."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.observability import metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "vote-ledger.json"
VIEWS_SQL = REPO / "services" / "adapters" / "postgres" / "migrations" / "018_dashboard_views.sql"
METRIC = re.compile(r"\b((?:vote_ledger|faststream|process)_[a-z_]+)\b")
VIEW = re.compile(r"\b(dashboard_[a-z_]+)\b")


def _targets(panels: list[dict]) -> list[dict]:
    found = []
    for panel in panels:
        found += panel.get("targets", [])
        found += _targets(panel.get("panels", []))
    return found


def _exposed_names() -> set[str]:
    """Our registries' names plus FastStream's, as its middleware registers them on the ledger's registry."""
    from faststream.kafka.prometheus import KafkaPrometheusMiddleware

    faststream = CollectorRegistry()
    KafkaPrometheusMiddleware(registry=faststream)
    return metrics.metric_names() | metrics.metric_names([faststream])


def test_the_dashboard_is_json_with_prometheus_and_sql_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    targets = _targets(dashboard["panels"])
    assert dashboard["uid"] == "vote-ledger"
    assert sum("expr" in t for t in targets) >= 15
    assert sum("rawSql" in t for t in targets) >= 4


def test_every_metric_the_dashboard_queries_exists_in_a_registry():
    exposed = _exposed_names()
    queried = {
        name
        for t in _targets(json.loads(DASHBOARD.read_text())["panels"])
        for name in METRIC.findall(t.get("expr", ""))
    }
    assert queried, "the dashboard queries no metric"
    assert queried <= exposed, f"queried but not exposed: {sorted(queried - exposed)}"


def test_every_metric_of_the_design_is_queried_by_the_dashboard():
    text = DASHBOARD.read_text()
    ours = {
        name for name in metrics.metric_names() if name.startswith("vote_ledger_") and not name.endswith("_created")
    }
    families = {re.sub(r"_(bucket|sum|count|total)$", "", name) for name in ours}
    assert {f for f in families if f not in text} == set()


def test_every_view_the_dashboard_reads_is_created_by_migration_018():
    created = set(re.findall(r"CREATE OR REPLACE VIEW (dashboard_[a-z_]+)", VIEWS_SQL.read_text()))
    dashboard = json.loads(DASHBOARD.read_text())
    sql = " ".join(t.get("rawSql", "") for t in _targets(dashboard["panels"]))
    sql += " ".join(v.get("query", "") for v in dashboard["templating"]["list"] if isinstance(v.get("query"), str))
    read = set(VIEW.findall(sql))
    assert read and read <= created, f"read but not created: {sorted(read - created)}"


def test_migration_018_says_tallies_cannot_be_prorated_in_sql_and_grants_the_reader():
    sql = VIEWS_SQL.read_text()
    assert "R17" in sql and "cannot be applied" in sql and "/v1/meetings/{meeting_id}/tally" in sql
    granted = re.search(r"GRANT SELECT ON (.*?) TO vote_ledger_reader", sql, re.S)[1]
    assert set(re.findall(r"CREATE OR REPLACE VIEW (dashboard_[a-z_]+)", sql)) == set(VIEW.findall(granted))


def test_sql_panels_quote_the_dashboards_variables_as_sql_strings_never_splice_them_raw():
    # '$meeting' inside quotes is spliced as typed: a value holding a quote rewrites the query. Grafana's
    # ${var:sqlstring} doubles quotes and adds the outer ones. $__timeFilter and the like are Grafana's macros.
    spliced = [
        (t["rawSql"], name)
        for t in _targets(json.loads(DASHBOARD.read_text())["panels"])
        if "rawSql" in t
        for name in re.findall(r"\$\{?(?!__)(\w+(?::\w+)?)", t["rawSql"])
        if not name.endswith(":sqlstring")
    ]
    assert spliced == []


def test_the_grafana_data_source_logs_in_with_the_dashboards_role_not_the_readers():
    datasources = (REPO / "deploy" / "grafana" / "provisioning" / "datasources.yaml").read_text()
    assert "vote_ledger_dashboards" in datasources and "GRANT vote_ledger_reader" not in datasources
    assert "GRANT SELECT ON dashboard_submissions_per_minute" in VIEWS_SQL.read_text()
    assert re.search(r"TO vote_ledger_reader, vote_ledger_dashboards;", VIEWS_SQL.read_text())
