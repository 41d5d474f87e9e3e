"""Every Thrive metric the dashboard and the alert rules reference.

A test compares these names with what the running services expose at /metrics, so a
renamed metric cannot silently blank a panel or disarm an alert.
Use: `referenced_metrics()` -> {metric name: {where it is used}}; or run this file to print them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "grafana" / "thrive-dashboard.json"
ALERTS = HERE / "prometheus" / "thrive-alerts.yaml"

# Recording rules are named thrive:<...> (with colons), so they never match this pattern.
_METRIC = re.compile(r"\bthrive_[a-z_]+\b")
# Series the client library derives from one histogram (or summary) family.
_DERIVED = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """Metric family names in one PromQL expression (histogram suffixes stripped)."""
    names = set()
    for name in _METRIC.findall(expr):
        for suffix in _DERIVED:
            if name.endswith(suffix):
                name = name.removesuffix(suffix)
                break
        names.add(name)
    return names


def dashboard_exprs(path: Path = DASHBOARD) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, rows included."""
    dashboard = json.loads(path.read_text())

    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield panel.get("title", "?"), target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard["panels"])


def rule_exprs(path: Path = ALERTS) -> Iterator[tuple[str, str]]:
    """(alert or record name, PromQL) for every rule in the PrometheusRule (or rules file)."""
    document = yaml.safe_load(path.read_text())
    groups = document["spec"]["groups"] if "spec" in document else document["groups"]
    for group in groups:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], str(rule["expr"])


def referenced_metrics() -> dict[str, set[str]]:
    """Metric name -> the panels and rules that use it."""
    used: dict[str, set[str]] = {}
    for kind, exprs in (("panel", dashboard_exprs()), ("rule", rule_exprs())):
        for where, expr in exprs:
            for name in metric_names(expr):
                used.setdefault(name, set()).add(f"{kind}: {where}")
    return used


if __name__ == "__main__":
    for metric, places in sorted(referenced_metrics().items()):
        print(f"{metric}  ({len(places)} uses)")
