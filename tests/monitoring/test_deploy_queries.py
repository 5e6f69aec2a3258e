"""Every Prometheus rule and Grafana panel queries series RRR really exports.

The code that feeds each series is exercised, the default registry is collected, and every
metric name in ``deploy/prometheus/alerts.yml`` and ``deploy/grafana/dashboards/*.json`` must be
among the sample names (``_total``, ``_bucket`` and friends included).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from marketdata.pipeline import QualityRecord
from monitoring import metrics
from monitoring.alerts import alert_raise
from monitoring.models import AlertRule
from monitoring.performance import job_finished, jobs_queue_depth_refresh
from trading.engine.orders import Fill, Liquidity, Order, OrderSide, OrderStatus

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KEYWORDS = {"and", "or", "unless", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        token = match.group()
        if expr[match.end() :].lstrip().startswith("(") or token in KEYWORDS:
            continue  # a function
        if "_" in token:
            names.add(token)
    return names


def label_names(expr: str) -> set[str]:
    """Return the label names a PromQL expression groups, matches or selects by."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {name.strip() for name in group.split(",") if name.strip()}
    for selector in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", selector))
    return labels


def _exercise(client) -> None:
    """Run the code behind every series once."""
    now = datetime.now(UTC)
    engine = metrics.EngineMetrics("deploy-check", reference_price=lambda symbol: Decimal(100))
    engine.on_event(None)
    order = Order(symbol="X-USD", side=OrderSide.BUY, quantity=Decimal(1), account="deploy-check")
    engine.on_fill(
        Fill(
            order.client_order_id,
            "X-USD",
            OrderSide.BUY,
            Decimal(1),
            Decimal("100.1"),
            Decimal(0),
            Liquidity.TAKER,
            now,
        )
    )
    order.status = OrderStatus.FILLED
    engine.on_order(order)
    rejected = Order(
        symbol="X-USD",
        side=OrderSide.BUY,
        quantity=Decimal(1),
        status=OrderStatus.REJECTED,
        reject_reason="max_order_rate: too many",
    )
    engine.on_order(rejected)
    feed = metrics.FeedMetrics("deploy-check")
    for verdict in ("flag", "quarantine"):
        record = QualityRecord(
            ts=now,
            source="deploy-check",
            symbol="X-USD",
            rule="r",
            verdict=verdict,
            reason="",
            event_ts=now,
            payload={},
        )
        feed.received("X-USD", now, [record])
    feed.sync(stored={"X-USD": 3}, reconnects=1)
    metrics.ENGINE_HEARTBEAT.labels("deploy-check").set(now.timestamp())
    metrics.portfolio_set("deploy-check", {name: 1.0 for name in metrics.PORTFOLIO})
    metrics.trading_state_set("deploy-check", "halted")
    for gauge in (metrics.ML_ACCURACY, metrics.ML_BASELINE, metrics.ML_RESOLVED):
        gauge.labels("deploy-check").set(0.5)

    class Model:
        def predict(self, bar):
            return object()

    class Bar:
        symbol = "X-USD"

    metrics.TimedPredictor(Model(), "deploy-check").predict(Bar())
    job_finished(
        "django_q",
        task={
            "func": "deploy.check",
            "started": now,
            "stopped": now,
            "success": False,
            "result": "boom",
        },
    )
    jobs_queue_depth_refresh()
    AlertRule.objects.create(
        name="deploy",
        source="*",
        channel="webhook",
        target="not a url",
        cooldown_seconds=3600,
        min_severity="info",
    )
    alert_raise(kind="deploy_check", severity="info", message="one")
    alert_raise(kind="deploy_check", severity="info", message="two")  # deduplicated
    client.get("/health")  # django-prometheus request/response series


def _exported() -> dict[str, set[str]]:
    """Return each exported sample name with the label names it carries."""
    found: dict[str, set[str]] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _panel_exprs() -> dict[str, list[str]]:
    found = {}
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
        exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
        found[path.stem] = exprs
    return found


def test_metric_names_are_parsed_from_promql():
    expr = 'histogram_quantile(0.99, sum by (le) (rate(a_b_bucket{x=~"c_d"}[5m]))) / 1e-9'
    assert metric_names(expr) == {"a_b_bucket"}
    assert metric_names("time() - max by (source) (rrr_x_seconds) > 120") == {"rrr_x_seconds"}
    assert label_names(expr) == {"le", "x"}
    assert label_names('a and on (s, t) b{u!="v"}') == {"s", "t", "u"}


@pytest.mark.django_db(transaction=True)
def test_every_rule_and_panel_queries_an_exported_series(client):
    _exercise(client)
    exported = _exported()
    boards = _panel_exprs()
    assert set(boards) == {"trading-overview", "feed-health", "risk", "ml", "jobs"}
    missing = {}
    for where, exprs in [("alerts.yml", _rule_exprs()), *boards.items()]:
        assert exprs, f"{where} has no queries"
        for expr in exprs:
            names = metric_names(expr)
            assert names, f"{where}: no metric in {expr!r}"
            if unknown := names - set(exported):
                missing[f"{where}: {expr}"] = sorted(unknown)
                continue
            # A label no series of the expression carries groups everything into one blank line.
            carried = set().union(*(exported[name] for name in names))
            if unknown := label_names(expr) - carried:
                missing[f"{where}: {expr}"] = [f"label {label}" for label in sorted(unknown)]
    assert not missing, missing


def test_prometheus_config_loads_the_rules_and_scrapes_web_and_engine():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["rrr-web"]["static_configs"][0]["targets"] == ["web:8000"]
    assert jobs["rrr-runtrader"]["static_configs"][0]["targets"] == ["trader-paper:9108"]
    alerts = {
        rule["alert"]
        for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
        for rule in g["rules"]
    }
    assert {"RRRFeedDown", "RRREngineStale", "RRRDrawdownNearLimit", "RRRHttpErrors"} <= alerts
