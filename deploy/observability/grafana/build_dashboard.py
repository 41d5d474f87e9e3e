"""Build thrive-dashboard.json: a pipeline overview row, then one row per service.

The JSON is the artifact Grafana imports; this script is how it is edited. Run
`uv run python deploy/observability/grafana/build_dashboard.py` after changing a panel
(tests/test_deploy_manifests.py fails while the committed JSON and this script disagree).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("thrive-dashboard.json")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
WIDTH, HEIGHT, PER_LINE = 8, 8, 3


def _q(le: float, metric: str, by: str, where: str = "") -> str:
    """Histogram quantile of `metric` grouped by `by`."""
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({le}, sum by ({group}) (rate({metric}_bucket{{{where}}}[{RATE}])))"


def panel(title: str, unit: str, *targets: tuple[str, str], stack: bool = False) -> dict[str, Any]:
    """A timeseries panel; targets are (PromQL, legend) pairs."""
    return {
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"stacking": {"mode": "normal" if stack else "none"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["max"]}},
        "targets": [
            {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


# Services that own a database and consume through the shared runtime: their rows show DB pool,
# outbox, handler latency, lag and events produced. The gateway owns nothing durable (no pool,
# no outbox, produces nothing) and reads its live topics with a plain subscriber, so those
# panels would stay blank in its row.
PIPELINE_SERVICES = ("recognition", "leaderboard", "notifier")


def common_panels(service: str) -> list[dict[str, Any]]:
    """Panels for what every service does (events in, HTTP) and, for the pipeline services,
    handler latency, lag, events produced, outbox and DB pool."""
    s = f'service="{service}"'
    consumed = panel(
        "Events consumed by outcome",
        "ops",
        (
            f"sum by (topic, outcome) (rate(thrive_events_consumed_total{{{s}}}[{RATE}]))",
            "{{topic}} {{outcome}}",
        ),
        stack=True,
    )
    http = [
        panel(
            "HTTP requests by status",
            "reqps",
            (
                f"sum by (status) (rate(thrive_http_requests_total{{{s}}}[{RATE}]))",
                "{{status}}",
            ),
            stack=True,
        ),
        panel(
            "HTTP latency p95 by route",
            "s",
            (_q(0.95, "thrive_http_request_duration_seconds", "route", s), "{{route}}"),
        ),
    ]
    if service not in PIPELINE_SERVICES:
        return [consumed, *http]
    return [
        consumed,
        panel(
            "Handler latency p95 (per batch)",
            "s",
            (_q(0.95, "thrive_handler_duration_seconds", "topic", s), "{{topic}}"),
        ),
        panel(
            "Consumer lag",
            "short",
            (f"sum by (topic) (thrive_consumer_lag{{{s}}})", "{{topic}}"),
        ),
        panel(
            "Events produced",
            "ops",
            (
                f"sum by (topic, type) (rate(thrive_events_produced_total{{{s}}}[{RATE}]))",
                "{{topic}} {{type}}",
            ),
        ),
        panel(
            "Outbox backlog and oldest row",
            "short",
            (f"max(thrive_outbox_backlog{{{s}}})", "rows waiting"),
            (f"max(thrive_outbox_oldest_age_seconds{{{s}}})", "oldest row age (s)"),
        ),
        *http,
        panel(
            "DB pool connections",
            "short",
            (f"sum by (state) (thrive_db_pool_connections{{{s}}})", "{{state}}"),
        ),
    ]


def pipeline_panels() -> list[dict[str, Any]]:
    """The overview an operator opens first: is the pipeline flowing and healthy."""
    return [
        panel(
            "Events in (consumed OK, by topic)",
            "ops",
            (
                f'sum by (topic) (rate(thrive_events_consumed_total{{outcome="ok"}}[{RATE}]))',
                "{{topic}}",
            ),
            stack=True,
        ),
        panel(
            "Consumer lag by service and topic",
            "short",
            ("sum by (service, topic) (thrive_consumer_lag)", "{{service}} {{topic}}"),
        ),
        panel(
            "Dead-lettered events",
            "short",
            (
                f"sum by (service, topic, error) (increase(thrive_dlq_events_total[{RATE}]))",
                "{{service}} {{topic}} {{error}}",
            ),
        ),
        panel(
            "Delivery success ratio by channel",
            "percentunit",
            (
                f'sum by (channel) (rate(thrive_deliveries_total{{outcome="delivered"}}[{RATE}]))'
                " / sum by (channel) (rate(thrive_deliveries_total"
                f'{{outcome=~"delivered|failed"}}[{RATE}]))',
                "{{channel}}",
            ),
        ),
        panel(
            "GraphQL latency",
            "s",
            (_q(0.5, "thrive_graphql_operation_duration_seconds", ""), "p50"),
            (_q(0.95, "thrive_graphql_operation_duration_seconds", ""), "p95"),
            (_q(0.99, "thrive_graphql_operation_duration_seconds", ""), "p99"),
        ),
        panel(
            "Outbox oldest row by service",
            "s",
            ("max by (service) (thrive_outbox_oldest_age_seconds)", "{{service}}"),
        ),
        panel(
            "Gateway 5xx ratio (error budget: 0.5 %)",
            "percentunit",
            (
                f'sum(rate(thrive_http_requests_total{{service="gateway",status=~"5.."}}[{RATE}]))'
                f' / sum(rate(thrive_http_requests_total{{service="gateway"}}[{RATE}]))',
                "5xx ratio",
            ),
        ),
        panel(
            "Handler errors by service",
            "ops",
            (
                "sum by (service, topic) (rate(thrive_events_consumed_total"
                f'{{outcome="error"}}[{RATE}]))',
                "{{service}} {{topic}}",
            ),
        ),
        panel(
            "Live WebSocket connections",
            "short",
            ("sum(thrive_websocket_connections)", "connections"),
        ),
    ]


def specific_panels(service: str) -> list[dict[str, Any]]:
    """Panels for what only this service measures."""
    if service == "recognition":
        return [
            panel(
                "Milestones reached by rule",
                "short",
                (
                    "sum by (rule_id) (increase(thrive_recognition_milestones_reached_total"
                    f"[{RATE}]))",
                    "{{rule_id}}",
                ),
                stack=True,
            )
        ]
    if service == "leaderboard":
        return [
            panel(
                "Events applied to standings",
                "ops",
                (f"sum(rate(thrive_leaderboard_events_applied_total[{RATE}]))", "applied"),
            ),
            panel(
                "Board query latency p95",
                "s",
                (_q(0.95, "thrive_leaderboard_query_duration_seconds", "query"), "{{query}}"),
            ),
        ]
    if service == "notifier":
        return [
            panel(
                "Deliveries by channel and outcome",
                "ops",
                (
                    f"sum by (channel, outcome) (rate(thrive_deliveries_total[{RATE}]))",
                    "{{channel}} {{outcome}}",
                ),
                stack=True,
            ),
            panel(
                "Retries and parked deliveries",
                "short",
                (
                    f"sum by (channel) (rate(thrive_delivery_retries_total[{RATE}]))",
                    "retries/s {{channel}}",
                ),
                ("sum by (channel) (thrive_deliveries_parked)", "parked {{channel}}"),
            ),
            panel(
                "Attention budget deferrals",
                "ops",
                (
                    f"sum by (reason) (rate(thrive_budget_deferrals_total[{RATE}]))",
                    "{{reason}}",
                ),
                stack=True,
            ),
            panel(
                "Digest size",
                "short",
                (_q(0.5, "thrive_digest_size", ""), "p50"),
                (_q(0.95, "thrive_digest_size", ""), "p95"),
            ),
        ]
    return [
        panel(
            "GraphQL operations by outcome",
            "ops",
            (
                f"sum by (operation, outcome) (rate(thrive_graphql_operations_total[{RATE}]))",
                "{{operation}} {{outcome}}",
            ),
            stack=True,
        ),
        panel(
            "GraphQL latency p95 by operation",
            "s",
            (_q(0.95, "thrive_graphql_operation_duration_seconds", "operation"), "{{operation}}"),
        ),
        panel(
            "Slowest resolvers (p95)",
            "s",
            (
                f"topk(10, {_q(0.95, 'thrive_graphql_resolver_duration_seconds', 'field')})",
                "{{field}}",
            ),
        ),
        panel(
            "WebSocket connections",
            "short",
            ("sum(thrive_websocket_connections)", "connections"),
        ),
    ]


def build() -> dict[str, Any]:
    """The whole dashboard as a dict."""
    sections = [("Pipeline overview", pipeline_panels())]
    for service in ("recognition", "leaderboard", "notifier", "gateway"):
        sections.append((service.capitalize(), common_panels(service) + specific_panels(service)))
    panels: list[dict[str, Any]] = []
    y = 0
    for title, members in sections:
        panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        for i, member in enumerate(members):
            member["gridPos"] = {
                "h": HEIGHT,
                "w": WIDTH,
                "x": (i % PER_LINE) * WIDTH,
                "y": y + (i // PER_LINE) * HEIGHT,
            }
        y += -(-len(members) // PER_LINE) * HEIGHT
        panels.extend(members)
    for panel_id, item in enumerate(panels, start=1):
        item["id"] = panel_id
    return {
        "uid": "thrive-overview",
        "title": "Thrive",
        "description": "Event pipeline and services of Thrive (recognition and kudos).",
        "tags": ["thrive"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    """The dashboard as the exact text committed in thrive-dashboard.json."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
