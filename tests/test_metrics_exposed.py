"""Every metric the Grafana dashboard and the Prometheus alert rules use is exposed by the
running services, so no panel stays blank and no alert is silently disarmed by a rename."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from thrive_shared.platform import NAMES, Platform

pytestmark = [pytest.mark.stack, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
# `# TYPE <name> <type>` and sample lines `<name>{...} value` / `<name> value`.
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.MULTILINE)


def _metric_names_module() -> Any:
    path = ROOT / "deploy" / "observability" / "metric_names.py"
    spec = importlib.util.spec_from_file_location("thrive_deploy_metric_names", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def exposed_families(text: str) -> set[str]:
    """Metric family names in a Prometheus text exposition, as dashboards query them.

    prometheus_client writes `# TYPE` for every registered family, even a labelled one with
    no samples yet; counters are typed with their `_total` name, histograms with the bare
    name (their series add _bucket/_sum/_count, which metric_names strips too).
    """
    return {name for name, _type in _TYPE.findall(text)} | set(_SAMPLE.findall(text))


def test_exposed_families_reads_the_text_format() -> None:
    text = (
        "# HELP thrive_x_total X.\n# TYPE thrive_x_total counter\n"
        "# HELP thrive_h_seconds H.\n# TYPE thrive_h_seconds histogram\n"
        'thrive_h_seconds_bucket{le="0.1"} 1.0\nthrive_h_seconds_count 1.0\n'
        "thrive_g 3.0\n"
    )
    assert {"thrive_x_total", "thrive_h_seconds", "thrive_g"} <= exposed_families(text)


async def test_every_dashboard_and_alert_metric_is_exposed(platform: Platform) -> None:
    referenced: dict[str, set[str]] = _metric_names_module().referenced_metrics()
    assert referenced, "the dashboard and the rules reference no metric: parsing broke"
    by_service: dict[str, set[str]] = {}
    async with httpx.AsyncClient(timeout=10.0) as client:
        for name in NAMES:
            response = await client.get(platform.url(name) + "/metrics")
            assert response.status_code == 200, f"{name} /metrics: {response.status_code}"
            assert response.headers["content-type"].startswith("text/plain"), name
            by_service[name] = exposed_families(response.text)
    exposed = set().union(*by_service.values())
    missing = {
        metric: sorted(places) for metric, places in referenced.items() if metric not in exposed
    }
    assert not missing, "referenced but exposed by no service:\n" + "\n".join(
        f"  {metric}: used by {', '.join(places)}" for metric, places in sorted(missing.items())
    )
    # The shared runtime's families are on every service, so every service row has data.
    for name, families in by_service.items():
        for shared in ("thrive_http_requests_total", "thrive_events_consumed_total"):
            assert shared in families, f"{name} does not expose {shared}"
